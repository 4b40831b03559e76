"""EDM diffusion downscaler: preconditioning, loss, schedules, samplers, seeds, shapes, training.

Known answers: EDM Table 1 coefficients; the ideal denoiser of Gaussian data
``D(x; s) = (s0^2 x + s^2 mu) / (s0^2 + s^2)`` must make every sampler produce N(mu, s0^2).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import gaussian_denoiser
from torch import nn

from ppviz.data.grid import Grid, coarsen_blocks
from ppviz.diffusion import (
    COND_CHANNELS,
    Downscaler,
    DownscalerConfig,
    EDMPrecond,
    build_from_config,
    edm_coefficients,
    edm_loss,
    get_sampler,
    karras_sigmas,
    member_generators,
    member_noise,
    sample_euler_maruyama,
    sample_heun,
    upsample_coarse,
)
from ppviz.training.diffusion_loop import (
    DiffusionTrainConfig,
    draw_crops,
    load_ema_model,
    read_log,
    steps_reached,
    train_diffusion,
)
from ppviz.models.unet import UNet, UNetConfig, count_parameters, pad_to_multiple



pytestmark = pytest.mark.usefixtures("one_thread")


TINY = UNetConfig(base_channels=8, channel_mult=(1, 2), blocks_per_level=1, emb_dim=16)
TINY8 = UNetConfig(base_channels=8, channel_mult=(1, 2, 2, 2), blocks_per_level=1, emb_dim=16)  # pads to 8


def _tiny_downscaler(unet: UNetConfig = TINY, seed: int = 0, **kw) -> Downscaler:
    torch.manual_seed(seed)
    model = Downscaler(DownscalerConfig(unet=unet, **kw))
    # Untrained outputs are exactly c_skip * x (zero-initialised last layers): perturb them so
    # that the network, the conditioning and the padding matter in these tests.
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.Conv2d) and not mod.weight.abs().sum():
                mod.weight.normal_(0, 0.05)
    return model.eval()


def _static(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Synthetic static channels (lsm, orography_km, sin/cos lat, sin/cos lon), shape (6, h, w)."""
    g = torch.Generator().manual_seed(seed)
    lat = torch.deg2rad(torch.linspace(40, 40 + 0.25 * (h - 1), h))[:, None].expand(h, w)
    lon = torch.deg2rad(torch.linspace(0, 0.25 * (w - 1), w))[None, :].expand(h, w)
    oro = torch.rand(h, w, generator=g)
    return torch.stack([(oro > 0.5).float(), oro, lat.sin(), lat.cos(), lon.sin(), lon.cos()])


# --------------------------------------------------------------------------------------------
# Preconditioning and loss
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma_data", [1.0, 0.4])
def test_precond_coefficients_match_edm_table1(sigma_data):
    for s in [0.002, 0.3, 1.0, 5.0, 80.0]:
        c_skip, c_out, c_in, c_noise = edm_coefficients(torch.tensor(s, dtype=torch.float64), sigma_data)
        sd = sigma_data
        assert float(c_skip) == pytest.approx(sd**2 / (s**2 + sd**2), rel=1e-12)
        assert float(c_out) == pytest.approx(s * sd / math.sqrt(s**2 + sd**2), rel=1e-12)
        assert float(c_in) == pytest.approx(1 / math.sqrt(s**2 + sd**2), rel=1e-12)
        assert float(c_noise) == pytest.approx(math.log(s) / 4, rel=1e-12)
    # c_skip -> 1 and c_out -> 0 as sigma -> 0
    c_skip, c_out, _, _ = edm_coefficients(torch.tensor(1e-8, dtype=torch.float64), sigma_data)
    assert float(c_skip) == pytest.approx(1.0, abs=1e-12) and float(c_out) < 1e-7


class _RecordingNet(nn.Module):
    """Stands in for the U-Net: returns a fixed F and records what it was given."""

    size_multiple = 1

    def forward(self, x, c_noise):
        self.seen = (x.clone(), c_noise.clone())
        return torch.full_like(x[:, :1], 0.7)


def test_precond_combines_network_output_as_eq7():
    net = _RecordingNet()
    pre = EDMPrecond(net, sigma_data=0.5)
    x = torch.randn(3, 1, 5, 6)
    cond = torch.randn(1, 2, 5, 6)
    sigma = torch.tensor([0.1, 1.0, 10.0])
    D = pre(x, sigma, cond)
    c_skip, c_out, c_in, c_noise = edm_coefficients(sigma.reshape(3, 1, 1, 1), 0.5)
    torch.testing.assert_close(D, c_skip * x + c_out * 0.7)
    inp, cn = net.seen
    torch.testing.assert_close(inp[:, :1], c_in * x)  # channel 0: c_in x
    torch.testing.assert_close(inp[:, 1:], cond.expand(3, -1, -1, -1))  # then the conditioning
    torch.testing.assert_close(cn, c_noise.reshape(3))


def test_denoiser_returns_x_at_tiny_sigma():
    model = _tiny_downscaler()
    x = torch.randn(2, 1, 16, 16)
    cond, _ = model.condition(torch.randn(2, 4, 4), _static(16, 16))
    with torch.no_grad():
        D = model.precond(x, 1e-6, cond)
        D1 = model.precond(x, 1.0, cond)
    torch.testing.assert_close(D, x, atol=1e-4, rtol=0)
    assert (D1 - x).abs().max() > 1e-2  # the network does contribute at sigma = 1


def test_edm_loss_known_answer_for_zero_network():
    # With F = 0 the denoiser is c_skip (y + n): the loss has a closed form.
    torch.manual_seed(0)
    pre = EDMPrecond(UNet(UNetConfig(base_channels=8, channel_mult=(1, 2), blocks_per_level=1,
                                     in_channels=1, emb_dim=16)), sigma_data=0.5)
    y = 0.5 * torch.randn(4, 1, 8, 8)
    sigma = torch.tensor([0.01, 0.3, 1.0, 20.0])
    noise = torch.randn_like(y)
    got = edm_loss(pre, y, None, sigma=sigma, noise=noise, reduction="none")
    s = sigma.reshape(4, 1, 1, 1)
    c_skip = 0.25 / (s**2 + 0.25)
    lam = (s**2 + 0.25) / (s * 0.5) ** 2
    want = (lam * (c_skip * (y + s * noise) - y) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(got, want)
    # EDM's design: ~1 at initialisation whatever sigma is
    big = 0.5 * torch.randn(64, 1, 8, 8)
    with torch.no_grad():
        l0 = edm_loss(pre, big, None, generator=torch.Generator().manual_seed(1))
    assert 0.8 < float(l0) < 1.2


# --------------------------------------------------------------------------------------------
# Schedules and samplers
# --------------------------------------------------------------------------------------------


def test_karras_sigmas():
    s = karras_sigmas(18)
    assert s.shape == (19,) and s.dtype == torch.float64
    assert float(s[0]) == pytest.approx(80.0) and float(s[-2]) == pytest.approx(0.002) and float(s[-1]) == 0.0
    assert bool((s[1:] < s[:-1]).all())
    # EDM eq. 5 at i = 9
    r = 7.0
    mid = (80 ** (1 / r) + 9 / 17 * (0.002 ** (1 / r) - 80 ** (1 / r))) ** r
    assert float(s[9]) == pytest.approx(mid, rel=1e-12)
    s2 = karras_sigmas(5, sigma_min=0.01, sigma_max=10, rho=3)
    assert s2.shape == (6,) and float(s2[0]) == pytest.approx(10) and float(s2[4]) == pytest.approx(0.01)
    with pytest.raises(ValueError):
        karras_sigmas(1)


MU, S0 = 1.0, 0.5


def _gaussian_denoiser(calls: list | None = None):
    """The ideal denoiser of data ~ N(MU, S0^2) pointwise."""
    return gaussian_denoiser(MU, S0, calls)


@pytest.mark.parametrize("steps, churn, std_rtol", [(18, 0.0, 0.07), (40, 0.0, 0.02), (40, 10.0, 0.04), (100, 10.0, 0.02)])
def test_heun_samples_gaussian_data(steps, churn, std_rtol):
    # 18 steps over sigma in [0.002, 80] leave a ~5% std error on this narrow Gaussian (the
    # sampler's discretisation error, 2nd order: see the next test); 40 steps ~1%. Churn makes
    # each step longer (from (1 + gamma) sigma_i), so the stochastic sampler needs more steps.
    sigmas = karras_sigmas(steps)
    x = member_noise((1, 32, 32), range(16)) * sigmas[0]
    out = sample_heun(_gaussian_denoiser(), x, sigmas, cond=None, churn=churn,
                      generator=torch.Generator().manual_seed(0))
    assert float(out.mean()) == pytest.approx(MU, abs=0.03)
    assert float(out.std()) == pytest.approx(S0, rel=std_rtol)


def test_heun_converges_to_the_exact_ode_solution_at_second_order():
    # Probability-flow ODE of N(MU, S0^2) data: x(0) = MU + (x(T) - MU) S0 / sqrt(S0^2 + T^2).
    x0 = member_noise((1, 16, 16), range(4), dtype=torch.float64) * 80.0
    exact = MU + (x0 - MU) * S0 / math.sqrt(S0**2 + 80.0**2)
    err = {n: float((sample_heun(_gaussian_denoiser(), x0, karras_sigmas(n)) - exact).abs().max())
           for n in (18, 40, 100)}
    assert err[100] < 5e-3
    assert err[18] / err[40] > 3.5 and err[40] / err[100] > 4.5  # (40/18)^2 = 4.9, (100/40)^2 = 6.3


def test_euler_maruyama_samples_gaussian_data():
    sigmas = karras_sigmas(1000)
    x = member_noise((1, 32, 32), range(16)) * sigmas[0]
    calls: list = []
    out = sample_euler_maruyama(_gaussian_denoiser(calls), x, sigmas, cond=None, generator=member_generators(range(16)))
    assert len(calls) == 1000
    assert float(out.mean()) == pytest.approx(MU, abs=0.03)
    assert float(out.std()) == pytest.approx(S0, rel=0.03)


def test_callback_once_per_step_and_evaluation_count():
    sigmas = karras_sigmas(7)
    for sampler, nfe in [(sample_heun, 2 * 7 - 1), (sample_euler_maruyama, 7)]:
        calls, infos = [], []
        x = member_noise((1, 4, 4), [0, 1]) * sigmas[0]
        sampler(_gaussian_denoiser(calls), x, sigmas, cond=None, callback=infos.append)
        assert len(calls) == nfe
        assert [d["i"] for d in infos] == list(range(7))
        for d, (a, b) in zip(infos, zip(sigmas[:-1], sigmas[1:])):
            assert {"i", "sigma", "sigma_next", "x", "denoised"} <= set(d)
            assert d["sigma"] == pytest.approx(float(a)) and d["sigma_next"] == pytest.approx(float(b))
            assert d["x"].shape == x.shape and d["denoised"].shape == x.shape


def test_sampler_registry_lists_names():
    assert get_sampler("heun") is sample_heun
    with pytest.raises(ValueError, match="euler_maruyama"):
        get_sampler("ddim")


def test_member_noise_per_seed():
    a = member_noise((1, 8, 8), [3, 5, 7])
    b = member_noise((1, 8, 8), [5])
    assert a.shape == (3, 1, 8, 8)
    assert torch.equal(a[1], b[0])
    assert not torch.equal(a[0], a[1])


# --------------------------------------------------------------------------------------------
# Downscaler: determinism, shapes, conditioning
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler, kw", [("heun", {"num_steps": 4, "churn": 2.0}), ("euler_maruyama", {"num_steps": 6})])
def test_downscaler_members_depend_only_on_their_seed(sampler, kw):
    model = _tiny_downscaler()
    coarse = torch.randn(6, 8)
    static = _static(24, 32)
    a = model.sample(coarse, static, [11, 12, 13], sampler=sampler, **kw)
    b = model.sample(coarse, static, [11, 12, 13], sampler=sampler, **kw)
    alone = model.sample(coarse, static, [12], sampler=sampler, **kw)
    chunked = model.sample(coarse, static, [11, 12, 13], sampler=sampler, max_batch=2, **kw)
    assert a.shape == (3, 24, 32)
    assert torch.equal(a, b)
    # identical noise; batched convolutions may differ in the last float bits only
    torch.testing.assert_close(alone[0], a[1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(chunked, a, atol=1e-4, rtol=1e-4)
    assert (a[0] - a[1]).abs().mean() > 1e-3


def test_downscaler_any_region_size_is_padded_and_cropped_back():
    model = _tiny_downscaler(TINY8)  # U-Net needs multiples of 8
    coarse = torch.randn(11, 15)  # 44 x 60 fine
    infos = []
    out = model.sample(coarse, _static(44, 60), [0, 1], num_steps=3, callback=infos.append)
    assert out.shape == (2, 44, 60) and bool(torch.isfinite(out).all())
    assert len(infos) == 3 and infos[-1]["x"].shape == (2, 1, 44, 60) and infos[-1]["members"] == [0, 1]
    # the callback sees full fields: its last x is the output
    torch.testing.assert_close(infos[-1]["x"][:, 0], out)


def test_residual_base_is_added_back():
    # With F = 0 (fresh zero-initialised output layer) and tiny sigmas the sampler leaves its
    # start (~0 residual) alone, so the result is the upsampled coarse field.
    torch.manual_seed(0)
    model = Downscaler(DownscalerConfig(unet=TINY)).eval()
    coarse = torch.randn(4, 4)
    out = model.sample(coarse, _static(16, 16), [0], sigmas=torch.tensor([1e-4, 1e-5, 0.0]))
    torch.testing.assert_close(out[0], upsample_coarse(coarse), atol=1e-3, rtol=0)


def test_pad_to_multiple():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    p, crop = pad_to_multiple(x, 4)
    assert p.shape == (2, 3, 8, 8)
    assert torch.equal(p[..., crop[0], crop[1]], x)
    p1, _ = pad_to_multiple(x[0, 0], 8)  # 2-D input
    assert p1.shape == (8, 8)
    same, crop2 = pad_to_multiple(x[..., :4, :4], 4)
    assert same.shape == (2, 3, 4, 4) and crop2 == (slice(0, 4), slice(0, 4))
    tiny, crop3 = pad_to_multiple(torch.ones(1, 1, 2, 3), 16)  # too short to reflect: replicate
    assert tiny.shape == (1, 1, 16, 16) and bool((tiny == 1).all())


def test_upsample_coarse_bilinear_and_nearest():
    # A linear ramp in coarse-cell index is reproduced in the interior (block centres line up).
    coarse = torch.arange(5, dtype=torch.float32)[None, :].expand(3, 5)
    up = upsample_coarse(coarse, 4, "bilinear")
    i = torch.arange(2, 4 * 4 + 2)
    torch.testing.assert_close(up[0, i], (i - 1.5) / 4)
    nearest = upsample_coarse(coarse, 4, "nearest")
    assert torch.equal(nearest.reshape(3, 4, 5, 4).mean((1, 3)), coarse)


def test_config_round_trip_and_channels():
    cfg = DownscalerConfig(unet=TINY8, sigma_data=0.4)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert DownscalerConfig.from_dict(d) == cfg
    model = build_from_config(d)
    assert isinstance(model, Downscaler) and model.config == cfg
    assert cfg.cond_channels == len(COND_CHANNELS) == 7 and cfg.unet.in_channels == 8
    with pytest.raises(ValueError, match="in_channels"):
        DownscalerConfig(unet=UNetConfig(in_channels=5))
    with pytest.raises(ValueError, match="unknown"):
        DownscalerConfig.from_dict({"nope": 1})


def test_default_unet_size():
    net = UNet(UNetConfig())
    assert count_parameters(net) * 4 < 15e6  # < 15 MB of float32 weights
    assert net.size_multiple == 8


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

TOY_GRID = Grid(lat_start=45.0, lon_start=0.0, res=0.25, nlat=48, nlon=48)


def _toy_data(t: int = 12):
    """Fine PP = smooth large scale + a fixed small-scale pattern tied to the 'orography' channel."""
    rng = np.random.default_rng(0)
    static = _static(48, 48).numpy()
    yy, xx = np.meshgrid(np.arange(48), np.arange(48), indexing="ij")
    fields = []
    for _ in range(t):
        kx, ky, ph = rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.15), rng.uniform(0, 2 * np.pi)
        large = np.sin(kx * xx + ky * yy + ph)
        fields.append(large + 0.8 * (static[1] - 0.5) + 0.05 * rng.standard_normal((48, 48)))
    return np.asarray(fields, dtype=np.float32), static


def test_draw_crops_are_block_aligned_with_exact_coarse():
    pp, static = _toy_data(3)
    rng = np.random.default_rng(1)
    fine, coarse, stat = draw_crops(rng, pp, static, TOY_GRID.lat, 16, 5, 4)
    assert fine.shape == (5, 16, 16) and coarse.shape == (5, 4, 4) and stat.shape == (5, 6, 16, 16)
    full_coarse = coarsen_blocks(pp, TOY_GRID.lat, 4)
    rng = np.random.default_rng(1)
    t = rng.integers(0, 3, 5)
    i0 = 4 * rng.integers(0, 9, 5)
    j0 = 4 * rng.integers(0, 9, 5)
    for k in range(5):
        np.testing.assert_array_equal(fine[k], pp[t[k], i0[k] : i0[k] + 16, j0[k] : j0[k] + 16])
        np.testing.assert_allclose(coarse[k], full_coarse[t[k], i0[k] // 4 : i0[k] // 4 + 4, j0[k] // 4 : j0[k] // 4 + 4],
                                   rtol=1e-6)


def _eval_loss(model: Downscaler, pp, static) -> float:
    fine, coarse, stat = draw_crops(np.random.default_rng(123), pp, static, TOY_GRID.lat, 32, 16, 4)
    g = torch.Generator().manual_seed(5)
    sigma = torch.tensor([0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0] * 2)
    noise = torch.randn(16, 1, 32, 32, generator=g)
    with torch.no_grad():
        return float(model.loss(torch.from_numpy(fine), torch.from_numpy(coarse), torch.from_numpy(stat),
                                sigma=sigma, noise=noise))


def test_training_reduces_loss_and_writes_log(tmp_path):
    pp, static = _toy_data()
    cfg = DiffusionTrainConfig(crop=32, batch_size=8, steps=60, lr=3e-3, lr_warmup_steps=5,
                               ema_halflife_steps=5, log_every=10, ckpt_every=30, seed=0)
    mcfg = DownscalerConfig(unet=TINY, sigma_data=0.4)
    torch.manual_seed(0)
    before = _eval_loss(Downscaler(mcfg).eval(), pp, static)  # same init as the trainer (seed 0)
    rng_before = torch.get_rng_state()
    ema = train_diffusion(pp, static, TOY_GRID, cfg, tmp_path, model_config=mcfg, progress=False)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is left alone
    after = _eval_loss(ema, pp, static)
    assert after < 0.7 * before, (before, after)
    log = read_log(tmp_path / "train_log.jsonl")
    assert [r["step"] for r in log] == [10, 20, 30, 40, 50, 60]
    assert all({"step", "loss", "lr", "seconds"} <= set(r) for r in log)
    saved = json.loads((tmp_path / "train_config.json").read_text())
    assert saved["model_config"] == mcfg.to_dict() and saved["train_config"]["steps"] == 60
    loaded = load_ema_model(tmp_path)
    for (k, a), (_, b) in zip(loaded.state_dict().items(), ema.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(FileExistsError):
        train_diffusion(pp, static, TOY_GRID, cfg, tmp_path, model_config=mcfg, progress=False)


def test_resume_matches_uninterrupted_run(tmp_path):
    pp, static = _toy_data(4)
    mcfg = DownscalerConfig(unet=TINY, sigma_data=0.5)
    kw = dict(crop=16, batch_size=4, lr=1e-3, lr_warmup_steps=2, log_every=1, ckpt_every=3, seed=3)
    full = train_diffusion(pp, static, TOY_GRID, DiffusionTrainConfig(steps=6, **kw), tmp_path / "a",
                           model_config=mcfg, progress=False)
    train_diffusion(pp, static, TOY_GRID, DiffusionTrainConfig(steps=3, **kw), tmp_path / "b",
                    model_config=mcfg, progress=False)
    resumed = train_diffusion(pp, static, TOY_GRID, DiffusionTrainConfig(steps=6, **kw), tmp_path / "b",
                              resume=True, progress=False)
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    log_a = read_log(tmp_path / "a" / "train_log.jsonl")
    log_b = read_log(tmp_path / "b" / "train_log.jsonl")
    assert [r["step"] for r in log_b] == list(range(1, 7))
    assert [r["loss"] for r in log_b] == [r["loss"] for r in log_a]


def test_time_limit_stops_saves_and_resume_continues_bit_for_bit(tmp_path):
    """max_seconds=0 stops after the first step with a state there; --resume then ends exactly
    where an uninterrupted run ends (the limit only cuts the run into sessions)."""
    pp, static = _toy_data(4)
    mcfg = DownscalerConfig(unet=TINY, sigma_data=0.5)
    cfg = DiffusionTrainConfig(steps=5, crop=16, batch_size=4, lr=1e-3, lr_warmup_steps=2, log_every=1,
                               ckpt_every=5, seed=3)
    full = train_diffusion(pp, static, TOY_GRID, cfg, tmp_path / "a", model_config=mcfg, progress=False)
    cut = train_diffusion(pp, static, TOY_GRID, cfg, tmp_path / "b", model_config=mcfg, progress=False,
                          max_seconds=0.0)
    assert steps_reached(tmp_path / "b") == 1
    log = read_log(tmp_path / "b" / "train_log.jsonl")
    assert log[-1]["stopped"] == "time limit" and log[-1]["step"] == 1
    assert not all(torch.equal(a, b) for a, b in zip(full.state_dict().values(), cut.state_dict().values()))
    resumed = train_diffusion(pp, static, TOY_GRID, cfg, tmp_path / "b", resume=True, progress=False)
    assert steps_reached(tmp_path / "b") == 5
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
