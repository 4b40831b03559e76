"""Snapshots of a running training and their held-out scores: a run directory is a timeline.

Every ``--snapshot-every K`` steps the writer (rank 0) saves the EMA model as a checkpoint
directory ``RUN/snapshots/step-00001000`` (:func:`ppviz.checkpoints.save_checkpoint`: safetensors
+ config, written to a hidden directory and renamed into place, so a snapshot is complete or
absent) and scores it on fixed held-out hours, one region and fixed seeds
(:func:`snapshot_scores`), appending ``{"step", "event": "snapshot", "snapshot", "scores"}`` to
the run's JSON-lines log beside the loss lines. :func:`read_run_log` reads such a log, keeping
every good line and reporting broken ones; :func:`promote_snapshot` turns a snapshot into a
registered checkpoint with its model card (``ppviz checkpoints promote``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SNAPSHOTS = "snapshots"
LOG_FILE = "train_log.jsonl"
#: Wavelength band (km) of the log-spectral distance, and the wet threshold (mm/h).
LSD_BAND_KM = (50.0, 200.0)
WET_MM_H = 0.1


def snapshot_dir(run, step: int) -> Path:
    """``RUN/snapshots/step-NNNNNNNN``."""
    return Path(run) / SNAPSHOTS / f"step-{int(step):08d}"


def list_snapshots(run) -> list[int]:
    """Steps of the complete snapshots of ``run`` (half-written ones are hidden temporaries)."""
    d = Path(run) / SNAPSHOTS
    if not d.is_dir():
        return []
    steps = []
    for p in d.iterdir():
        if p.name.startswith("step-") and p.name[5:].isdigit() and (p / "config.json").is_file():
            steps.append(int(p.name[5:]))
    return sorted(steps)


def write_snapshot(run, step: int, ema, extra: dict) -> Path:
    """Save the EMA model of ``step`` as a snapshot checkpoint (atomic); returns its directory."""
    from ppviz.checkpoints import save_checkpoint

    return save_checkpoint(ema, snapshot_dir(run, step), kind="diffusion", architecture="edm-unet",
                           config=ema.config.to_dict(), extra={**extra, "snapshot_step": int(step)},
                           overwrite=True)


def snapshot_scores(models, ds, times, region, *, seeds=(0,), members: int = 4, steps: int = 12) -> dict:
    """Held-out scores of a model on fixed ``times`` x ``seeds`` over ``region`` (tp, mm/h).

    Returns
    -------
    dict
        ``crps_fair`` (mean fair CRPS), ``lsd_db`` (log-spectral distance, dB, of the mean member
        spectrum to the truth's over 50-200 km wavelengths), ``p99_ratio`` (99th percentile of
        the members over the truth's), ``wet_fraction`` and ``wet_fraction_truth`` (cells above
        0.1 mm/h), and what they were computed on.
    """
    from ppviz.metrics.ensemble import crps_ensemble
    from ppviz.pipeline import downscale_time
    from ppviz.spectral import rapsd

    dx = region.fine_grid.dx_km
    crps, psd_e, psd_t, ens_all, truth_all = [], 0.0, 0.0, [], []
    for t in times:
        for seed in seeds:
            ens = downscale_time(models, ds, t, region, members=members, steps=steps, seed=int(seed))
            truth = ens.inputs.truth_tp
            crps.append(float(crps_ensemble(ens.tp_members, truth).mean()))
            k, p = rapsd(ens.tp_members, dx)
            psd_e = psd_e + p.mean(axis=0)
            psd_t = psd_t + rapsd(truth[None], dx)[1][0]
            ens_all.append(np.asarray(ens.tp_members).ravel())
            truth_all.append(np.asarray(truth).ravel())
    with np.errstate(divide="ignore"):
        wl = np.where(k > 0, 1.0 / k, np.inf)
    band = (wl >= LSD_BAND_KM[0]) & (wl <= LSD_BAND_KM[1])
    tiny = 1e-12
    lsd = float(np.sqrt(np.mean((10.0 * np.log10((psd_e[band] + tiny) / (psd_t[band] + tiny))) ** 2)))
    e, tr = np.concatenate(ens_all), np.concatenate(truth_all)
    p99_t = float(np.percentile(tr, 99))
    return {
        "crps_fair": float(np.mean(crps)),
        "lsd_db": lsd,
        "p99_ratio": float(np.percentile(e, 99)) / p99_t if p99_t > 0 else float("nan"),
        "wet_fraction": float(np.mean(e > WET_MM_H)),
        "wet_fraction_truth": float(np.mean(tr > WET_MM_H)),
        "times": [str(np.datetime_as_string(np.datetime64(t, "h"))) for t in times],
        "seeds": [int(s) for s in seeds],
        "members": members,
        "sampler_steps": steps,
        "region": region.slug_or_box,
    }


def snapshot_callback(run, every: int, pp, ds, held_idx, region, *, hours: int = 2, seeds: int = 1,
                      members: int = 4, transform=None, extra: dict | None = None):
    """``callback(step, ema)`` for the trainer: every ``every`` steps a snapshot of ``ema`` and its
    :func:`snapshot_scores` on ``hours`` held-out hours spread evenly over ``held_idx`` and seeds
    ``0..seeds-1``, appended to ``run``'s log. The same hours, region and seeds at every step."""
    import torch

    from ppviz.pipeline import Models

    held = np.asarray(ds.time.values[np.asarray(held_idx)])
    if held.size == 0:
        raise ValueError("snapshots need held-out hours; the data have none")
    times = held[np.linspace(0, held.size - 1, min(hours, held.size)).round().astype(int)]

    def callback(step: int, ema) -> None:
        if step % every:
            return
        model = __import__("copy").deepcopy(ema).cpu().eval()
        path = write_snapshot(run, step, model, extra or {})
        models = Models(pp=pp.model, diffusion=model, pp_name=pp.name, pp_sha256=pp.sha256,
                        diffusion_name=path.name, diffusion_sha256="(snapshot)", device=torch.device("cpu"),
                        transform=transform)
        scores = snapshot_scores(models, ds, times, region, seeds=range(seeds), members=members)
        append_line(Path(run) / LOG_FILE, {"step": int(step), "event": "snapshot", "snapshot": path.name,
                                           "scores": scores})

    return callback


def append_line(path, record: dict) -> None:
    """Append one JSON line (one ``write`` call, flushed)."""
    line = json.dumps(record, allow_nan=False, default=float) + "\n"
    with open(path, "a") as f:
        f.write(line)
        f.flush()


def read_run_log(path) -> tuple[list[dict], list[str]]:
    """The records of a run's JSON-lines log and a message per line that is not a JSON object
    (a line being written, or damaged): good lines are never lost to a bad one."""
    records, problems = [], []
    text = Path(path).read_text(errors="replace") if Path(path).is_file() else ""
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            problems.append(f"{Path(path).name} line {n} is not JSON (being written, or damaged); skipped")
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
            problems.append(f"{Path(path).name} line {n} has no integer 'step'; skipped")
            continue
        records.append(rec)
    return records, problems


def promote_snapshot(run, step: int, out, *, overwrite: bool = False) -> Path:
    """Register snapshot ``step`` of ``run`` as the checkpoint ``out`` with a model card.

    ValueError when the snapshot is missing or incomplete (names the steps there are); the
    checkpoint is written atomically, with the snapshot's scores from the run's log.
    """
    from ppviz.checkpoints import CheckpointError, load_checkpoint, save_checkpoint

    run = Path(run)
    if Path(out).exists() and not overwrite:
        raise ValueError(f"{out} exists; choose another --out or pass --overwrite")
    src = snapshot_dir(run, step)
    if not src.is_dir():
        have = list_snapshots(run)
        raise ValueError(f"{run} has no snapshot at step {step}; snapshots: "
                         f"{', '.join(map(str, have)) if have else 'none'}")
    try:
        snap = load_checkpoint(src, kind="diffusion")
    except (CheckpointError, OSError, ValueError) as exc:
        raise ValueError(f"snapshot step {step} of {run} is incomplete or damaged ({exc})") from None
    records, _ = read_run_log(run / LOG_FILE)
    scores = next((r.get("scores") for r in records if r.get("event") == "snapshot" and r["step"] == step), None)
    extra = {k: v for k, v in snap.extra.items() if k not in ("default",)}
    extra.update({"promoted_from": f"{run.name}@{step}", "heldout_scores_snapshot": scores,
                  "summary": f"EDM PP downscaler, snapshot of {run.name} at step {step}"})
    arch = snap.config["config"]
    card = snapshot_card(Path(out).name, run.name, step, arch, extra, scores)
    return save_checkpoint(snap.model, out, kind="diffusion", architecture="edm-unet", config=arch,
                           extra=extra, model_card=card, overwrite=overwrite)


def snapshot_card(name: str, run_name: str, step: int, config: dict, extra: dict, scores: dict | None) -> str:
    """MODEL_CARD.md of a promoted snapshot."""
    u = config.get("unet", {})
    rows = "(no held-out scores were logged for this step)"
    if scores:
        rows = "\n".join(f"| {k} | {scores[k]:.4f} |" for k in
                         ("crps_fair", "lsd_db", "p99_ratio", "wet_fraction", "wet_fraction_truth")
                         if isinstance(scores.get(k), (int, float)))
        rows = ("| score | value |\n|---|---|\n" + rows + f"\n\nOn held-out hours {', '.join(scores['times'])}, "
                f"seeds {scores['seeds']}, {scores['members']} members, {scores['sampler_steps']} Heun steps, "
                f"region `{scores['region']}`.")
    return f"""# {name}: EDM PP downscaler (snapshot of a training run)

EMA weights of training run `{run_name}` at step {step}, promoted with
`ppviz checkpoints promote`. Decode its members with the PP checkpoint
`{extra.get('pp_checkpoint', '?')}`.

## Architecture

U-Net: base {u.get('base_channels')} channels, multipliers {u.get('channel_mult')},
sigma_data {config.get('sigma_data')}.

## Held-out scores at this step

{rows}

Fair CRPS in mm/h; LSD: log-spectral distance (dB) of the members' mean tp spectrum to the
truth's over {LSD_BAND_KM[0]:g}-{LSD_BAND_KM[1]:g} km; p99 ratio: 99th percentile of the members
over the truth's; wet fraction: share of cells above {WET_MM_H} mm/h.

## Limits

A snapshot mid-training: compare it with later steps (the dashboard's training runs) before
trusting it.
"""


def is_inside(path, roots) -> bool:
    """Whether ``path`` resolves to a directory below one of ``roots`` (symlinks resolved)."""
    p = Path(path).resolve()
    return any(p != Path(r).resolve() and Path(r).resolve() in p.parents for r in roots)

