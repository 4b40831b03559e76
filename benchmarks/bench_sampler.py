"""Benchmark: the diffusion sampler on one member over a fixed region, all figures from one run.

Prints

1. seconds per network evaluation (one denoiser call on one member);
2. the sampler's achieved FLOP/s (FLOPs of one evaluation counted by
   ``torch.utils.flop_counter.FlopCounterMode``, times the evaluations, over the sampler's wall
   time) as a fraction of a plain ``torch.matmul``'s FLOP/s measured in the same run;
3. 18-step Heun (35 evaluations) against 1000-step Euler-Maruyama (1000 evaluations): time ratio
   and spectral agreement of the decoded tp (radially averaged spectra, ensemble means over the
   members, ratio Heun / EM per wavelength bin, reported as min / max / geometric mean over
   wavelengths 50-400 km).

Run from the repository root (uses the shipped checkpoints)::

    .venv/bin/python benchmarks/bench_sampler.py [--region alps] [--members 4] [--em-steps 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppviz.data.regions import Region  # noqa: E402
from ppviz.data.source import load_dataset  # noqa: E402
from ppviz.pipeline import Models, _static, coarse_input, member_seed  # noqa: E402
from ppviz.spectral import rapsd  # noqa: E402


def matmul_flops(sizes=(1024, 2048, 3072), repeats: int = 5) -> float:
    """Best FLOP/s of square float32 matmuls on this CPU (median of ``repeats`` per size)."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
        best = max(best, 2 * n**3 / statistics.median(times))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--region", default="alps")
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--em-steps", type=int, default=1000)
    ap.add_argument("--time-index", type=int, default=-30)
    args = ap.parse_args()

    torch.set_grad_enabled(False)
    models = Models.load(device="cpu")
    ds = load_dataset(None)
    region = Region.parse(args.region)
    t = ds.time.values[args.time_index]
    inp = coarse_input(models, ds, t, region)
    net = models.diffusion
    cond, base = net.condition(inp.coarse_pp, _static(region.fine_grid))
    H, W = cond.shape[-2:]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; checkpoint {models.diffusion_name}; "
          f"region {region.slug_or_box} ({H} x {W} cells); time {np.datetime_as_string(t, unit='h')}")

    # 1. one evaluation, and its FLOPs
    x = torch.randn(1, 1, H, W)
    sigma = torch.tensor([1.0])
    net.precond(x, sigma, cond)
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        net.precond(x, sigma, cond)
        times.append(time.perf_counter() - t0)
    sec_eval = statistics.median(times)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        net.precond(x, sigma, cond)
    flops_eval = fc.get_total_flops()
    peak = matmul_flops()
    print(f"network evaluation: {sec_eval * 1e3:.1f} ms per member ({flops_eval / 1e9:.2f} GFLOP)")

    # 2. the sampler's achieved FLOP/s (Heun, 18 steps = 35 evaluations, one member)
    seeds = [member_seed(0, t, k) for k in range(args.members)]
    t0 = time.perf_counter()
    net.sample(inp.coarse_pp, _static(region.fine_grid), seeds[:1], sampler="heun", num_steps=18)
    heun1 = time.perf_counter() - t0
    n_eval = 2 * 18 - 1
    achieved = n_eval * flops_eval / heun1
    print(f"Heun 18 steps, 1 member: {heun1:.2f} s, {n_eval} evaluations -> {achieved / 1e9:.1f} GFLOP/s; "
          f"best torch.matmul (1024-3072): {peak / 1e9:.1f} GFLOP/s; fraction {achieved / peak:.2f}")

    # 3. Heun-18 vs Euler-Maruyama-1000, all members
    t0 = time.perf_counter()
    heun = net.sample(inp.coarse_pp, _static(region.fine_grid), seeds, sampler="heun", num_steps=18)
    t_heun = time.perf_counter() - t0
    t0 = time.perf_counter()
    em = net.sample(inp.coarse_pp, _static(region.fine_grid), seeds, sampler="euler_maruyama",
                    num_steps=args.em_steps)  # the checkpoint's schedule (config.schedule)
    t_em = time.perf_counter() - t0
    dx = region.fine_grid.dx_km
    k, p_heun = rapsd(models.decode(heun.numpy()), dx)
    _, p_em = rapsd(models.decode(em.numpy()), dx)
    _, p_truth = rapsd(inp.truth_tp, dx)
    wl = 1.0 / k
    sel = (wl >= 50) & (wl <= 400)
    r = p_heun.mean(0)[sel] / p_em.mean(0)[sel]
    rt_h = p_heun.mean(0)[sel] / p_truth[sel]
    rt_e = p_em.mean(0)[sel] / p_truth[sel]
    g = lambda a: float(np.exp(np.mean(np.log(a))))  # noqa: E731
    print(f"{args.members} members: Heun-18 {t_heun:.1f} s vs Euler-Maruyama-{args.em_steps} {t_em:.1f} s "
          f"-> EM/Heun time ratio {t_em / t_heun:.1f}")
    print(f"tp spectrum Heun/EM over 50-400 km: min {r.min():.2f} max {r.max():.2f} geomean {g(r):.2f}; "
          f"vs truth: Heun {g(rt_h):.2f}, EM {g(rt_e):.2f} (geomean)")
    print(f"pp std: Heun {float(heun.std()):.3f}, EM {float(em.std()):.3f}; "
          f"tp mean: Heun {float(models.decode(heun.numpy()).mean()):.4f}, EM {float(models.decode(em.numpy()).mean()):.4f}, "
          f"truth {float(inp.truth_tp.mean()):.4f} mm/h")


if __name__ == "__main__":
    main()
