"""Every sampler through one signature, with known answers on Gaussian data (issue 11)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import gaussian_denoiser

from ppviz.diffusion.samplers import (
    SAMPLERS, evaluations, get_sampler, karras_sigmas, member_generators, member_noise, sample_dpmpp_2m, steps_for,
)

MU, S0 = 0.3, 0.5


def _denoiser(calls=None):
    """The exact denoiser of data ~ N(MU, S0^2)."""
    return gaussian_denoiser(MU, S0, calls)


def _exact_ode(x_T, sigma_max):
    # Probability-flow ODE of N(MU, S0^2) data: x(0) = MU + (x(T) - MU) S0 / sqrt(S0^2 + T^2).
    return MU + (x_T - MU) * S0 / math.sqrt(S0**2 + sigma_max**2)


def test_unknown_sampler_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown sampler 'ddim'; valid samplers: \['dpmpp_2m', 'euler', "):
        get_sampler("ddim")
    assert set(SAMPLERS) == {"heun", "euler", "dpmpp_2m", "euler_maruyama"}


@pytest.mark.parametrize("name", ["heun", "euler", "dpmpp_2m"])
def test_deterministic_samplers_converge_to_the_exact_ode_solution(name):
    x0 = member_noise((1, 16, 16), range(4), dtype=torch.float64) * 5.0
    exact = _exact_ode(x0, 5.0)
    err = {n: float((get_sampler(name)(_denoiser(), x0, karras_sigmas(n, 0.002, 5.0), cond=None) - exact).abs().max())
           for n in (8, 32, 128)}
    assert err[8] > err[32] > err[128] and err[128] < (5e-2 if name == "euler" else 5e-3), err
    order = math.log(err[32] / err[128]) / math.log(4)
    assert order > (1.5 if name != "euler" else 0.7), (name, err, order)


@pytest.mark.parametrize("name, steps, rtol", [("heun", 18, 0.03), ("euler", 64, 0.05), ("dpmpp_2m", 18, 0.03),
                                               ("euler_maruyama", 1000, 0.04)])
def test_every_sampler_gives_the_right_mean_and_variance(name, steps, rtol):
    sigmas = karras_sigmas(steps, 0.002, 5.0)
    x = member_noise((1, 32, 32), range(16)) * sigmas[0]
    out = get_sampler(name)(_denoiser(), x, sigmas, cond=None, generator=member_generators(range(16)))
    # The start N(0, T^2) instead of the true N(MU, S0^2 + T^2) at T = 5 is carried exactly by the
    # ODE: mean MU (1 - S0 / sqrt(S0^2 + T^2)) = 0.270, std S0 T / sqrt(S0^2 + T^2) = 0.4975.
    # The reverse SDE (Euler-Maruyama) forgets its start and gives the data's MU and S0.
    c = 0.0 if name == "euler_maruyama" else S0 / math.sqrt(S0**2 + 25.0)
    assert float(out.mean()) == pytest.approx(MU * (1 - c), abs=0.02)
    assert float(out.std()) == pytest.approx(S0 * math.sqrt(1 - c**2), rel=rtol)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_vectorised_equals_member_by_member_and_callback_counts(name):
    sigmas = karras_sigmas(6, 0.002, 5.0)
    seeds = [3, 4, 5]
    x = member_noise((1, 6, 6), seeds) * sigmas[0]
    calls, infos = [], []
    batch = get_sampler(name)(_denoiser(calls), x, sigmas, cond=None, callback=infos.append,
                              generator=member_generators(seeds))
    assert len(calls) == evaluations(name, 6) and [i["i"] for i in infos] == list(range(6))
    for k, seed in enumerate(seeds):
        one = get_sampler(name)(_denoiser(), x[k : k + 1], sigmas, cond=None, generator=member_generators([seed]))
        torch.testing.assert_close(one, batch[k : k + 1], rtol=1e-5, atol=1e-6)


def test_dpmpp_2m_first_step_is_ddim_and_is_exact_for_one_step_to_zero():
    # One step from sigma to 0 returns the denoiser's output (e^{-h} = 0 in Lu et al. 2022 eq. 8).
    x = torch.full((1, 1, 2, 2), 2.0)
    out = sample_dpmpp_2m(_denoiser(), x, torch.tensor([1.0, 0.0]), cond=None)
    torch.testing.assert_close(out, _denoiser()(x, torch.tensor([1.0]), None))


def test_evaluations_and_steps_for():
    assert evaluations("heun", 18) == 35 and evaluations("dpmpp_2m", 4) == 4
    assert steps_for("heun", 7) == 4 and steps_for("heun", 2) is None and steps_for("euler", 3) == 3


def test_torch_free_sampler_names_match_the_registry():
    from ppviz.checkpoints.schedule import SAMPLER_NAMES, check_sampler

    assert set(SAMPLER_NAMES) == set(SAMPLERS)
    with pytest.raises(ValueError, match="valid samplers"):
        check_sampler("ddim")
