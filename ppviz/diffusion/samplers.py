"""Noise-level schedules and samplers for EDM denoisers, with one signature for all.

Every sampler is ``sample(denoiser, x, sigmas, *, cond, callback=None, generator=None, ...)``
(the k-diffusion convention):

- ``denoiser(x, sigma, cond) -> D(x; sigma)``: e.g. :class:`ppviz.diffusion.precond.EDMPrecond`;
  called with ``x`` of shape ``(B, ...)`` and ``sigma`` a ``(B,)`` tensor;
- ``x``: the starting state at noise level ``sigmas[0]``, i.e. ``sigmas[0] * noise`` with unit
  normal ``noise`` (see :func:`member_noise`), shape ``(B, ...)``, ensemble members along dim 0;
- ``sigmas``: decreasing noise levels ending with 0 (:func:`karras_sigmas`), length ``N + 1``
  for ``N`` steps;
- ``callback(info)`` after each step, ``info`` a dict with ``i`` (step, 0-based), ``sigma``
  (float, level the step started from), ``sigma_next`` (float, level reached), ``x`` (state
  after the step, at ``sigma_next``) and ``denoised`` (the step's first denoiser output);
- ``generator``: None (global RNG), one ``torch.Generator`` for the whole batch, or a sequence
  of one generator per member (:func:`member_generators`) so that member ``k`` does not depend
  on the batch it is sampled in. Random numbers are drawn on the generator's device (CPU for a
  CPU generator) and then moved to ``x.device``.

All follow Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative
Models" (EDM), with ``sigma(t) = t`` and ``s(t) = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor, object], torch.Tensor]
GeneratorArg = torch.Generator | Sequence[torch.Generator] | None


# ------------------------------------------------------------------------------------------
# Schedules and seeds
# ------------------------------------------------------------------------------------------


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """EDM time steps: ``n`` levels from ``sigma_max`` down to ``sigma_min``, then 0.

    EDM eq. 5::

        sigma_i = (sigma_max^(1/rho) + i / (n - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
        i = 0 .. n-1,   sigma_n = 0

    Parameters
    ----------
    n : int
        Number of non-zero levels (= sampler steps), >= 2.
    sigma_min, sigma_max : float
        End points (data units), ``0 < sigma_min < sigma_max``.
    rho : float
        Warping exponent (EDM: 7).

    Returns
    -------
    tensor, shape (n + 1,), float64, CPU
        Strictly decreasing, ``[sigma_max, ..., sigma_min, 0]``.
    """
    if n < 2:
        raise ValueError(f"karras_sigmas needs n >= 2, got {n}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    i = torch.arange(n, dtype=torch.float64)
    # EDM eq. 5.
    t = (sigma_max ** (1 / rho) + i / (n - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([t, torch.zeros(1, dtype=torch.float64)])


def grid_sigmas(levels) -> torch.Tensor:
    """Explicit noise levels as a sampler's ``sigmas``: float64 CPU tensor, checked.

    Parameters
    ----------
    levels : sequence of float, length N + 1 >= 2
        Strictly decreasing, non-negative, ending with 0 (e.g. a few-step student's stored grid,
        :meth:`ppviz.checkpoints.schedule.Schedule.grid`); ``[sigma_0, 0]`` is one step.

    Returns
    -------
    tensor, shape (N + 1,), float64
    """
    s = _check_sigmas(torch.as_tensor(levels, dtype=torch.float64))
    if s[-1] != 0:
        raise ValueError(f"explicit noise levels must end with 0, got {s}")
    return torch.tensor(s, dtype=torch.float64)


def schedule_sigmas(schedule, steps: int, sigma_min: float | None = None, sigma_max: float | None = None,
                    rho: float | None = None) -> torch.Tensor:
    """The noise levels of ``steps`` steps of a checkpoint's schedule.

    A schedule with stored ``grids`` (a few-step student) gives its stored levels
    (:func:`grid_sigmas`; ValueError for a step count it has none for, or for Karras overrides);
    any other gives :func:`karras_sigmas` with its ``sigma_min``, ``sigma_max``, ``rho`` unless
    overridden here.

    Parameters
    ----------
    schedule : ppviz.checkpoints.schedule.Schedule
    steps : int
    sigma_min, sigma_max, rho : float, optional
        Overrides of the schedule's Karras parameters.

    Returns
    -------
    tensor, shape (steps + 1,), float64
    """
    if schedule.grids is not None:
        if (sigma_min, sigma_max, rho) != (None, None, None):
            raise ValueError("this checkpoint samples on its stored noise levels; sigma_min, sigma_max and rho "
                             "cannot be overridden")
        return grid_sigmas(schedule.grid(steps))
    return karras_sigmas(steps, schedule.sigma_min if sigma_min is None else sigma_min,
                         schedule.sigma_max if sigma_max is None else sigma_max,
                         schedule.rho if rho is None else rho)


def _stream_seed(seed: int, stream: int) -> int:
    # An independent 63-bit seed for (member seed, stream) from numpy's SeedSequence.
    return int(np.random.SeedSequence([int(seed) & (2**64 - 1), stream]).generate_state(1, np.uint64)[0] >> 1)


def member_generators(seeds: Sequence[int], stream: int = 1) -> list[torch.Generator]:
    """One CPU ``torch.Generator`` per member seed, for a sampler's noise after the start.

    Stream 0 is the initial noise of :func:`member_noise`; samplers use stream 1 (the default),
    an independent sequence derived from ``(seed, stream)`` with ``numpy.random.SeedSequence``.
    """
    return [torch.Generator(device="cpu").manual_seed(_stream_seed(s, stream)) for s in seeds]


def member_noise(
    shape: Sequence[int],
    seeds: Sequence[int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Unit normal starting noise, one member per seed, stacked along dim 0.

    Member ``k`` is drawn from its own CPU generator seeded with ``seeds[k]``, so it is the same
    whether sampled alone or in any batch, and on any device.

    Parameters
    ----------
    shape : sequence of int
        Shape of one member, e.g. ``(1, H, W)``.
    seeds : sequence of int
        One seed per member.
    device, dtype
        Where and as what the result lives (drawn on the CPU in float32 first).

    Returns
    -------
    tensor, shape (len(seeds), *shape)
        Multiply by ``sigmas[0]`` to get a sampler's starting ``x``.
    """
    out = [torch.randn(tuple(shape), generator=torch.Generator(device="cpu").manual_seed(int(s))) for s in seeds]
    return torch.stack(out).to(device=device, dtype=dtype)


def _randn_like(x: torch.Tensor, generator: GeneratorArg) -> torch.Tensor:
    """Unit normal noise shaped like ``x``; per member when ``generator`` is a sequence."""
    if generator is None:
        return torch.randn_like(x)
    if isinstance(generator, torch.Generator):
        return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
    gens = list(generator)
    if len(gens) != x.shape[0]:
        raise ValueError(f"{len(gens)} generators for a batch of {x.shape[0]} members")
    return torch.stack(
        [torch.randn(x.shape[1:], generator=g, device=g.device, dtype=x.dtype) for g in gens]
    ).to(x.device)


def _report(callback, i: int, t_cur: float, t_next: float, x: torch.Tensor, denoised: torch.Tensor) -> None:
    # The per-step callback dict of the module docstring.
    if callback is not None:
        callback({"i": i, "sigma": t_cur, "sigma_next": t_next, "x": x, "denoised": denoised})


def _check_sigmas(sigmas) -> list[float]:
    s = [float(v) for v in torch.as_tensor(sigmas).reshape(-1)]
    if len(s) < 2:
        raise ValueError("sigmas needs at least 2 levels")
    if any(b >= a for a, b in zip(s, s[1:])) or s[-1] < 0:
        raise ValueError("sigmas must be strictly decreasing and non-negative")
    return s


# ------------------------------------------------------------------------------------------
# Samplers
# ------------------------------------------------------------------------------------------


def sample_heun(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas,
    *,
    cond=None,
    callback: Callable[[dict], None] | None = None,
    generator: GeneratorArg = None,
    churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> torch.Tensor:
    """EDM's 2nd-order (Heun) sampler, Algorithm 2; deterministic (Algorithm 1) when ``churn=0``.

    ``N = len(sigmas) - 1`` steps use ``2N - 1`` denoiser evaluations (the last step, to
    ``sigma = 0``, is a plain Euler step).

    Parameters
    ----------
    denoiser, x, sigmas, cond, callback, generator
        See the module docstring.
    churn : float
        ``S_churn``: total stochasticity; ``gamma_i = min(churn / N, sqrt(2) - 1)`` for
        ``s_tmin <= sigma_i <= s_tmax``.
    s_tmin, s_tmax, s_noise : float
        ``S_tmin``, ``S_tmax``, ``S_noise`` of EDM Algorithm 2.

    Returns
    -------
    tensor, shaped like ``x``
        Samples at ``sigmas[-1]`` (clean data when it is 0).
    """
    s = _check_sigmas(sigmas)
    n = len(s) - 1
    ones = x.new_ones(x.shape[0])
    for i in range(n):
        t_cur, t_next = s[i], s[i + 1]
        # EDM Alg. 2 lines 4-6: temporarily raise the noise level, t_hat = t_i + gamma_i t_i.
        gamma = min(churn / n, math.sqrt(2) - 1) if (churn > 0 and s_tmin <= t_cur <= s_tmax) else 0.0
        t_hat = t_cur + gamma * t_cur
        if gamma > 0:
            eps = s_noise * _randn_like(x, generator)
            x_hat = x + math.sqrt(t_hat**2 - t_cur**2) * eps
        else:
            x_hat = x
        # EDM Alg. 2 lines 7-8: Euler step, d_i = (x_hat - D(x_hat; t_hat)) / t_hat.
        denoised = denoiser(x_hat, t_hat * ones, cond)
        d_cur = (x_hat - denoised) / t_hat
        x_next = x_hat + (t_next - t_hat) * d_cur
        # EDM Alg. 2 lines 9-11: 2nd-order correction unless t_{i+1} = 0.
        if t_next > 0:
            d_prime = (x_next - denoiser(x_next, t_next * ones, cond)) / t_next
            x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
        x = x_next
        _report(callback, i, t_cur, t_next, x, denoised)
    return x


def sample_euler_maruyama(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas,
    *,
    cond=None,
    callback: Callable[[dict], None] | None = None,
    generator: GeneratorArg = None,
) -> torch.Tensor:
    """Euler-Maruyama on the reverse-time SDE: the stochastic baseline (use ~1000 steps).

    Derivation. EDM eq. 6 with ``sigma(t) = t`` and ``beta(t) = sigma_dot / sigma = 1 / t``
    (the choice that makes it the reverse of the variance-exploding forward SDE
    ``dx = sqrt(2 t) dw``) reads, backwards in time (``dt < 0``)::

        dx = -2 sigma score(x; sigma) dt + sqrt(2 sigma) dw_bar,
        score(x; sigma) = (D(x; sigma) - x) / sigma^2                  (EDM eq. 3)

    One Euler-Maruyama step from ``sigma_i`` to ``sigma_{i+1} < sigma_i`` (``dt = sigma_{i+1} -
    sigma_i``) is therefore::

        x_{i+1} = x_i + 2 (sigma_i - sigma_{i+1}) / sigma_i * (D(x_i; sigma_i) - x_i)
                  + sqrt(2 sigma_i (sigma_i - sigma_{i+1})) z,     z ~ N(0, I)

    The final step to ``sigma = 0`` would have ``2 (sigma_i - 0) / sigma_i = 2`` (a reflection
    about ``D``), so it is taken as the noise-free denoising step ``x = D(x; sigma_{N-1})``
    (the probability-flow Euler step to 0; Song et al. 2021's "denoise at the end").
    ``N = len(sigmas) - 1`` steps use ``N`` denoiser evaluations. With
    ``karras_sigmas(1000)`` every step has ``2 (sigma_i - sigma_{i+1}) / sigma_i < 0.05``.

    Parameters and returns as :func:`sample_heun` (no churn options: the SDE is stochastic).
    """
    s = _check_sigmas(sigmas)
    n = len(s) - 1
    ones = x.new_ones(x.shape[0])
    for i in range(n):
        t_cur, t_next = s[i], s[i + 1]
        denoised = denoiser(x, t_cur * ones, cond)
        if t_next > 0:
            dt = t_cur - t_next  # > 0: the magnitude of the (negative) time step
            # Reverse SDE drift -2 sigma score dt with score = (D - x) / sigma^2 (EDM eqs. 3, 6).
            x = x + (2 * dt / t_cur) * (denoised - x)
            # Diffusion term sqrt(2 beta) sigma dw = sqrt(2 sigma) dw, variance 2 sigma |dt|.
            x = x + math.sqrt(2 * t_cur * dt) * _randn_like(x, generator)
        else:
            x = denoised
        _report(callback, i, t_cur, t_next, x, denoised)
    return x


def sample_euler(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas,
    *,
    cond=None,
    callback: Callable[[dict], None] | None = None,
    generator: GeneratorArg = None,
) -> torch.Tensor:
    """Plain Euler on the probability-flow ODE (EDM Algorithm 1 without the 2nd-order correction).

    EDM eq. 4 with ``sigma(t) = t``: ``dx/dsigma = (x - D(x; sigma)) / sigma``, so one step is::

        x_{i+1} = x_i + (sigma_{i+1} - sigma_i) (x_i - D(x_i; sigma_i)) / sigma_i

    ``N = len(sigmas) - 1`` steps use ``N`` denoiser evaluations; deterministic (``generator``
    is accepted for the common signature and not used).
    """
    s = _check_sigmas(sigmas)
    ones = x.new_ones(x.shape[0])
    for i in range(len(s) - 1):
        t_cur, t_next = s[i], s[i + 1]
        denoised = denoiser(x, t_cur * ones, cond)
        # EDM Alg. 1 lines 4-5: d_i = (x_i - D(x_i; t_i)) / t_i, x_{i+1} = x_i + (t_{i+1} - t_i) d_i.
        x = x + (t_next - t_cur) * (x - denoised) / t_cur
        _report(callback, i, t_cur, t_next, x, denoised)
    return x


def sample_dpmpp_2m(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas,
    *,
    cond=None,
    callback: Callable[[dict], None] | None = None,
    generator: GeneratorArg = None,
) -> torch.Tensor:
    """DPM-Solver++(2M): the 2nd-order multistep solver of Lu et al. (2022), in EDM's sigma form.

    Lu, Zhou, Bao, Chen, Li & Zhu (2022), "DPM-Solver++: Fast Solver for Guided Sampling of
    Diffusion Probabilistic Models" (arXiv 2211.01095), Algorithm 2 (multistep, data prediction).
    With EDM's ``x_t = y + sigma n`` we have ``alpha_t = 1`` and ``lambda_t = log(alpha_t /
    sigma_t) = -log sigma``; writing ``h_i = lambda_{t_i} - lambda_{t_{i-1}} = log(sigma_{i-1} /
    sigma_i)`` and ``x0_i = D(x_i; sigma_i)`` the data prediction (the denoiser), the paper's
    first-order update (eq. 8 / DPM-Solver++(1), the DDIM step) is::

        x_i = (sigma_i / sigma_{i-1}) x_{i-1} - (e^{-h_i} - 1) x0_{i-1}

    and Algorithm 2 replaces ``x0_{i-1}`` from the second step on by the linear extrapolation::

        r_i = h_{i-1} / h_i,
        D_i = (1 + 1 / (2 r_i)) x0_{i-1} - 1 / (2 r_i) x0_{i-2}

    (with ``sigma_i / sigma_{i-1} = e^{-h_i}``). The first step and the last (to ``sigma = 0``,
    where ``e^{-h} = 0`` and the update is ``x = x0``) are first order, as in the paper's
    Algorithm 2 and k-diffusion's ``sample_dpmpp_2m``. ``N`` steps use ``N`` evaluations;
    deterministic (``generator`` accepted for the common signature, not used).
    """
    s = _check_sigmas(sigmas)
    ones = x.new_ones(x.shape[0])
    old_denoised, h_last = None, None
    for i in range(len(s) - 1):
        t_cur, t_next = s[i], s[i + 1]
        denoised = denoiser(x, t_cur * ones, cond)
        if t_next == 0:
            x = denoised  # e^{-h} = 0: the update reduces to the data prediction
        else:
            h = math.log(t_cur / t_next)  # lambda_{i+1} - lambda_i, lambda = -log sigma
            if old_denoised is None:
                d = denoised  # DPM-Solver++(1) (DDIM) for the first step
            else:
                r = h_last / h
                d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised  # Alg. 2, D_i
            x = (t_next / t_cur) * x - math.expm1(-h) * d
            h_last = h
        old_denoised = denoised
        _report(callback, i, t_cur, t_next, x, denoised)
    return x


#: Samplers by name; :func:`get_sampler` lists them on a bad name.
SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "heun": sample_heun,
    "euler": sample_euler,
    "dpmpp_2m": sample_dpmpp_2m,
    "euler_maruyama": sample_euler_maruyama,
}

#: Default step counts of each sampler (EDM: 18 Heun steps = 35 evaluations).
DEFAULT_STEPS: dict[str, int] = {"heun": 18, "euler": 35, "dpmpp_2m": 35, "euler_maruyama": 1000}


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """The sampler called ``name``; ValueError listing the valid names otherwise."""
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; valid samplers: {sorted(SAMPLERS)}") from None


def evaluations(sampler: str, steps: int) -> int:
    """Denoiser evaluations of ``steps`` steps of ``sampler`` (Heun: ``2 steps - 1``; others: ``steps``)."""
    get_sampler(sampler)
    return 2 * int(steps) - 1 if sampler == "heun" else int(steps)


def steps_for(sampler: str, evals: int) -> int | None:
    """The most steps of ``sampler`` within ``evals`` evaluations (None: not even 2 steps fit)."""
    get_sampler(sampler)
    n = (int(evals) + 1) // 2 if sampler == "heun" else int(evals)
    return n if n >= 2 else None
