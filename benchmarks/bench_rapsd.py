"""Benchmark: batched ``ppviz.spectral.rapsd`` vs ``pysteps.utils.spectral.rapsd`` field by field.

64 random fields on the full 0.25 deg Europe grid (160 x 240), dx_km = 27.8.  Prints the median
time of each over a few repeats, the speed-up and the agreement of the spectra.

pysteps returns the ring mean of ``|fft2|**2 / (ny nx)`` binned by ``round(sqrt(iy**2 + ix**2))``
in integer mode indices (bins 0 .. max(ny, nx)//2 - 1, DC first).  ppviz's ``rapsd`` is the ring
mean of the 2-D periodogram density ``|fft2|**2 dx**2 / (ny nx)``, so with ``bins='pysteps'``::

    ppviz_psd == dx_km**2 * pysteps_psd[1:]      and      ppviz_k == pysteps_freq[1:]

(The default ``bins='isotropic'`` uses the true |k| on this non-square grid, so its bins differ
from pysteps' index-based ones; it is timed too.)

Run from the repository root::

    .venv/bin/python benchmarks/bench_rapsd.py [--n-fields 64] [--repeats 9]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppviz.spectral import rapsd  # noqa: E402


def _import_pysteps():
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pysteps prints a config banner
            from pysteps.utils.spectral import rapsd as pysteps_rapsd
    except ImportError as exc:
        sys.exit(
            f"pysteps is not installed ({exc}); install the benchmark extra: "
            "pip install -e '.[bench]'"
        )
    return pysteps_rapsd


def _interleaved_medians(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Median wall time of each function, run in turns so background load hits all alike."""
    times: dict = {name: [] for name in fns}
    outs: dict = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}, outs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-fields", type=int, default=64)
    ap.add_argument("--ny", type=int, default=160)
    ap.add_argument("--nx", type=int, default=240)
    ap.add_argument("--dx-km", type=float, default=27.8)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                    help="field dtype; ppviz datasets store float32, and rapsd keeps float32 precision")
    args = ap.parse_args(argv)

    pysteps_rapsd = _import_pysteps()
    dx = args.dx_km
    fields = np.random.default_rng(0).gamma(0.5, 2.0, size=(args.n_fields, args.ny, args.nx))
    fields = fields.astype(args.dtype)  # both sides get the same array
    print(f"{args.n_fields} {args.dtype} fields of {args.ny}x{args.nx}, dx_km={dx}, "
          f"median of {args.repeats} interleaved repeats")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")

    def ours():
        return rapsd(fields, dx, bins="pysteps")

    def ours_iso():
        return rapsd(fields, dx)

    def theirs():
        res = [pysteps_rapsd(f, fft_method=np.fft, return_freq=True, d=dx, normalize=False)
               for f in fields]
        return np.stack([r[0] for r in res]), res[0][1]

    ours(), ours_iso(), theirs()  # warm-up (bin cache, FFT plans)
    t, out = _interleaved_medians({"ours": ours, "iso": ours_iso, "theirs": theirs}, args.repeats)
    t_ours, t_iso, t_theirs = t["ours"], t["iso"], t["theirs"]
    (k, psd), (k_iso, _), (ref, freq) = out["ours"], out["iso"], out["theirs"]

    factor = dx * dx
    scaled = factor * ref[:, 1:]
    rel = float(np.max(np.abs(psd - scaled) / np.abs(scaled)))
    k_rel = float(np.max(np.abs(k - freq[1:]) / freq[1:]))
    speedup = t_theirs / t_ours
    print(f"ppviz rapsd, batched, bins='pysteps'  : {t_ours * 1e3:8.1f} ms ({psd.shape[-1]} bins)")
    print(f"ppviz rapsd, batched, bins='isotropic': {t_iso * 1e3:8.1f} ms ({k_iso.size} bins)")
    print(f"pysteps rapsd, field by field         : {t_theirs * 1e3:8.1f} ms "
          f"({ref.shape[-1]} bins incl. DC)")
    print(f"normalisation: ppviz psd = dx_km**2 * pysteps psd[1:] "
          f"= {factor:.2f} km^2 * pysteps psd[1:]")
    print(f"common bins: {psd.shape[-1]} (pysteps bins 1..{ref.shape[-1] - 1}); "
          f"max relative difference of wavenumbers: {k_rel:.1e}")
    print(f"rapsd speed-up vs pysteps: {speedup:.1f}x (goal >= 10x); "
          f"max relative difference after normalisation: {rel:.1e}")
    # float32 FFTs round at ~1e-7 of the total power; pysteps computes in float64
    tol = 1e-4 if args.dtype == "float32" else 1e-9
    print(f"agreement tolerance for {args.dtype}: {tol:g} -> {'ok' if rel < tol else 'FAILED'}")
    return 0 if rel < tol else 1


if __name__ == "__main__":
    raise SystemExit(main())
