"""``ppviz train diffusion``: data preparation, held-out scores and the model card.

The loop itself (crops, EMA, resume) is :func:`ppviz.training.diffusion_loop.train_diffusion`.

Training pairs are made exactly as :mod:`ppviz.pipeline` makes its inputs with
``coarse_from="fine"``: the fine tp and vimd are encoded with the PP checkpoint, and the coarse
PP is the area-weighted 4 x 4 block mean of that fine PP (:func:`ppviz.data.grid.coarsen_blocks`).
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from ppviz.data.regions import Region
from ppviz.metrics.ensemble import crps_ensemble
from ppviz.spectral import rapsd

#: Wavelength band (km) of the spectral target of the models issue.
SPECTRAL_BAND_KM = (50.0, 200.0)
SPECTRAL_FACTOR = 1.5


def encode_fine_pp(pp_model: torch.nn.Module, ds: xr.Dataset, time_index, *, chunk: int = 48,
                   progress: bool = True) -> np.ndarray:
    """Fine PP of the chosen time steps, float32 ``(T, lat, lon)``, encoded in chunks of time."""
    from tqdm.auto import tqdm

    from ppviz.models.pp import encode_numpy

    idx = np.asarray(time_index)
    out = np.empty((idx.size, ds.sizes["lat"], ds.sizes["lon"]), dtype=np.float32)
    for a in tqdm(range(0, idx.size, chunk), desc="encode PP", unit="chunk", disable=not progress):
        sub = ds.isel(time=idx[a : a + chunk])
        tp = np.asarray(sub["tp"].values, dtype=np.float32)
        vimd = np.asarray(sub["vimd"].values, dtype=np.float32)
        if not (np.isfinite(tp).all() and np.isfinite(vimd).all()):
            raise ValueError("the training data have NaN or infinite tp/vimd; fill or drop those times first")
        out[a : a + chunk] = encode_numpy(pp_model, tp, vimd)
    return out


def band_ratio(wavelength_km: np.ndarray, psd: np.ndarray, psd_truth: np.ndarray, band=SPECTRAL_BAND_KM) -> dict:
    """Min, max and geometric mean of ``psd / psd_truth`` over the wavelengths inside ``band``."""
    sel = (wavelength_km >= band[0]) & (wavelength_km <= band[1])
    r = psd[sel] / psd_truth[sel]
    return {"min": float(r.min()), "max": float(r.max()), "geomean": float(np.exp(np.mean(np.log(r))))}


def heldout_scores(models, ds: xr.Dataset, times, region: Region, *, members: int = 4, steps: int = 18,
                   seed: int = 0, progress: bool = True) -> dict:
    """The diffusion targets of the models issue on held-out ``times``.

    Returns the ensemble's and the baselines' tp spectra relative to the truth over 50-200 km
    (min / max / geometric-mean ratio over the band's wavelength bins; the target is every bin
    within a factor 1.5), the mean fair CRPS of the ensemble and the MAE of bicubic and
    PP-bicubic tp (mm/h), and the spectra themselves for plotting.
    """
    from tqdm.auto import tqdm

    from ppviz.pipeline import downscale_time

    dx = region.fine_grid.dx_km
    psd_sum: dict[str, np.ndarray] = {}
    crps, mae_bic, mae_ppb = [], [], []
    k = None
    for t in tqdm(list(times), desc="held-out", unit="time", disable=not progress):
        ens = downscale_time(models, ds, t, region, members=members, steps=steps, seed=seed)
        truth = ens.inputs.truth_tp
        fields = {"ensemble": ens.tp_members, "truth": truth[None],
                  "bicubic": ens.baselines["bicubic"][None], "pp_bicubic": ens.baselines["pp_bicubic"][None]}
        for name, f in fields.items():
            k, p = rapsd(f, dx)
            psd_sum[name] = psd_sum.get(name, 0.0) + p.mean(axis=0)
        crps.append(float(crps_ensemble(ens.tp_members, truth).mean()))  # fair CRPS
        mae_bic.append(float(np.abs(ens.baselines["bicubic"] - truth).mean()))
        mae_ppb.append(float(np.abs(ens.baselines["pp_bicubic"] - truth).mean()))
    n = len(crps)
    psd = {name: v / n for name, v in psd_sum.items()}
    with np.errstate(divide="ignore"):
        wl = np.where(k > 0, 1.0 / k, np.inf)
    ratios = {name: band_ratio(wl, psd[name], psd["truth"]) for name in ("ensemble", "bicubic", "pp_bicubic")}
    lo, hi = 1.0 / SPECTRAL_FACTOR, SPECTRAL_FACTOR
    return {
        "dates": n,
        "members": members,
        "steps": steps,
        "region": region.slug_or_box,
        "spectral_band_km": list(SPECTRAL_BAND_KM),
        "spectral_ratio_ensemble": ratios["ensemble"],
        "spectral_ratio_bicubic": ratios["bicubic"],
        "spectral_ratio_pp_bicubic": ratios["pp_bicubic"],
        "spectrum_within_factor_1.5": bool(lo <= ratios["ensemble"]["min"] and ratios["ensemble"]["max"] <= hi),
        "bicubic_falls_below_by_more": bool(ratios["bicubic"]["min"] < ratios["ensemble"]["min"]
                                            and ratios["bicubic"]["min"] < lo),
        "crps_ensemble": float(np.mean(crps)),
        "mae_bicubic": float(np.mean(mae_bic)),
        "mae_pp_bicubic": float(np.mean(mae_ppb)),
        "crps_below_bicubic_mae": bool(np.mean(crps) < np.mean(mae_bic)),
        "spectra": {"wavelength_km": wl.tolist(), **{name: v.tolist() for name, v in psd.items()}},
    }


def format_heldout(s: dict) -> str:
    """The held-out diffusion scores as a few printed lines."""
    band = f"{s['spectral_band_km'][0]:g}-{s['spectral_band_km'][1]:g} km"
    lines = [f"held-out: {s['dates']} dates, {s['members']} members, {s['steps']} Heun steps, region {s['region']}"]
    for name in ("ensemble", "bicubic", "pp_bicubic"):
        r = s[f"spectral_ratio_{name}"]
        lines.append(f"  tp spectrum / truth over {band}, {name:10s}: min {r['min']:.3f}  max {r['max']:.3f}  "
                     f"geomean {r['geomean']:.3f}")
    lines.append(f"  ensemble within a factor 1.5 of the truth: {s['spectrum_within_factor_1.5']}; "
                 f"bicubic falls below by more: {s['bicubic_falls_below_by_more']}")
    lines.append(f"  CRPS ensemble {s['crps_ensemble']:.4f} mm/h vs MAE bicubic {s['mae_bicubic']:.4f} "
                 f"(PP-bicubic {s['mae_pp_bicubic']:.4f}): CRPS lower: {s['crps_below_bicubic_mae']}")
    return "\n".join(lines)


def schedule_text(schedule: dict | None, train_config: dict) -> str:
    """The card's noise-schedule paragraph of a newly trained checkpoint."""
    if not schedule:
        return "EDM's image defaults (sigma_max = 80): no schedule recorded."
    return (f"Karras sigmas with sigma_min = {schedule['sigma_min']:g}, sigma_max = {schedule['sigma_max']:g}, "
            f"rho = {schedule['rho']:g}; trained with ln(sigma) ~ N({train_config['P_mean']}, {train_config['P_std']}^2). "
            f"sigma_max is 10 sigma_data (ppviz.training.run.training_schedule: between the values measured best "
            f"at 4 Heun steps for edm-pp-v1 and edm-tp-v1). Fewest steps allowed per sampler: "
            f"{schedule['min_steps']} (carried over from the v1 measurements, not measured for this checkpoint); "
            f"default {schedule['default_steps']} {schedule['sampler']} steps.")


def diffusion_model_card(name: str, model_config: dict, train_config: dict, scores: dict, *, command: str,
                         seconds: float, data_desc: str, pp_checkpoint: str, pp_sha256: str,
                         n_params: int, planned_steps: int | None = None) -> str:
    """The MODEL_CARD.md of a diffusion downscaler checkpoint; ``planned_steps``: the steps asked
    for when a time limit stopped training earlier (``train_config["steps"]`` is the step reached)."""
    from ppviz.training.cards import hardware_text

    u = model_config["unet"]
    stopped = (f", stopped by the time limit (--max-minutes) at step {train_config['steps']} of the "
               f"{planned_steps} planned" if planned_steps and planned_steps > train_config["steps"] else "")
    r = scores
    band = f"{r['spectral_band_km'][0]:g}-{r['spectral_band_km'][1]:g} km"
    rows = "\n".join(
        f"| {n} | {r[f'spectral_ratio_{n}']['min']:.3f} | {r[f'spectral_ratio_{n}']['max']:.3f} | "
        f"{r[f'spectral_ratio_{n}']['geomean']:.3f} |" for n in ("ensemble", "bicubic", "pp_bicubic"))
    return f"""# {name}: PP diffusion downscaler (EDM)

Generates 0.25 deg pseudo-precipitation (PP) over Europe from 1 deg PP, after Karras et al.
(2022, EDM) and Radhakrishnan et al. (2024, arXiv 2412.14620). Decode its members to tp with the
PP checkpoint it was trained with: `{pp_checkpoint}` (model.safetensors sha256 `{pp_sha256[:16]}...`).

## What it generates

- target: the residual `fine PP - bilinear(coarse PP)` (added back by `Downscaler.sample`);
  `sigma_data = {model_config['sigma_data']:.4f}` (the residual's std on training data).
- conditioning: the coarse PP upsampled bilinearly, land-sea mask, orography (km), sin/cos of
  latitude and longitude: {', '.join(model_config['static_names'])}.
- **coarse PP**, in training and by default at inference (`coarse_from="fine"`): the fine tp and
  vimd are encoded with the PP model and the fine PP is averaged over 4 x 4 blocks (area-weighted).
  `coarse_from="coarse"` (for 1 deg data) encodes block-averaged tp and vimd instead; the model
  never saw that in training, so expect somewhat different statistics.

## Architecture

U-Net (EDM-style residual blocks, GroupNorm, SiLU, noise embedding): base {u['base_channels']}
channels, multipliers {u['channel_mult']}, {u['blocks_per_level']} block(s) per level,
attention {u['attention']}; {n_params / 1e6:.2f} M parameters. EDM preconditioning
(c_skip, c_out, c_in, c_noise) and loss with ln(sigma) ~ N({train_config['P_mean']}, {train_config['P_std']}^2).

## Noise schedule

{schedule_text(model_config.get('schedule'), train_config)}

## Training

- data: {data_desc}
- {train_config['steps']} Adam steps, batch {train_config['batch_size']} random {train_config['crop']} x {train_config['crop']}
  crops on the 4 x 4 block lattice, lr {train_config['lr']} (warm-up {train_config['lr_warmup_steps']} steps),
  EMA half-life {train_config['ema_halflife_steps']} steps, seed {train_config['seed']}.
- took {seconds / 60:.1f} min on {hardware_text()}{stopped}.
- command: `{command}`

## Held-out scores

{r['dates']} held-out dates (spread over the held-out days of the synthetic data, never seen in training), region
`{r['region']}`, {r['members']} members, {r['steps']} Heun steps. Spectral ratio = radially averaged
tp power spectrum / truth's, over the wavelength bins in {band} (target: all within a factor 1.5).

| tp spectrum / truth | min | max | geomean |
|---|---|---|---|
{rows}

- ensemble within a factor 1.5 of the truth: **{r['spectrum_within_factor_1.5']}**; bicubic falls
  below it by more: **{r['bicubic_falls_below_by_more']}**
- fair CRPS of the ensemble: **{r['crps_ensemble']:.4f} mm/h**; MAE of bicubic:
  {r['mae_bicubic']:.4f} mm/h; of PP-bicubic: {r['mae_pp_bicubic']:.4f} mm/h
  (CRPS lower than bicubic's MAE: **{r['crps_below_bicubic_mae']}**)

## Limits

Trained on ppviz's synthetic Europe (calibrated to two ERA5 days), small enough to sample a
full-Europe member in seconds on a 2-core CPU. It is a teaching and QA model, not a research one:
retrain on real ERA5 (and bigger, on a GPU) before drawing scientific conclusions.
"""
