"""Model cards: the markdown that travels with every checkpoint."""

from __future__ import annotations

from ppviz.metrics.pp import PP_TARGETS


def hardware_text() -> str:
    """Where this process trains, for a card's "took ... on" line: the CUDA device's name, or the
    CPU and its core count."""
    import os

    import torch

    if torch.cuda.is_available():
        return f"one {torch.cuda.get_device_name(0)} GPU"
    return f"the CPU ({os.cpu_count()} cores)"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def scores_table(scores_by_set: dict[str, dict], targets: dict | None = None) -> str:
    """A markdown table: one row per score, one column per held-out set, plus the target."""
    targets = targets or {}
    sets = list(scores_by_set)
    keys = [k for k in next(iter(scores_by_set.values())) if k not in ("cells",)]
    head = "| score | " + " | ".join(sets) + " | target |\n|---|" + "---|" * (len(sets) + 1) + "\n"
    rows = []
    for k in keys:
        t = targets.get(k)
        rows.append(f"| {k} | " + " | ".join(_fmt(scores_by_set[s].get(k, '')) for s in sets)
                    + f" | {t[0] + ' ' + str(t[1]) if t else ''} |")
    return head + "\n".join(rows) + "\n"


def pp_model_card(name: str, config: dict, train: dict, scores: dict[str, dict], command: str,
                  seconds: float, data_desc: list[str]) -> str:
    """The MODEL_CARD.md of a PP encoder-decoder checkpoint."""
    m = config
    return f"""# {name}: PP encoder-decoder

Pointwise fully connected encoder-decoder after Radhakrishnan et al. (2024), arXiv 2412.14620.
The encoder maps each cell's (tp, vimd) in mm/h to one pseudo-precipitation value (PP); the
decoder maps PP back to tp >= 0 (exactly 0 in the dry part of PP space).

## Architecture

- encoder: inputs `a = log1p(tp / {m['tp_scale']})`, `b = vimd / {m['vimd_scale']:.4f}`{', `1{tp > ' + str(m.get('dry_threshold')) + '}`' if m.get('wet_input') else ''};
  {m['depth']} hidden layers of {m['hidden']} units (SiLU), one output.
- decoder: input PP; {m['depth']} hidden layers of {m['hidden']} units (SiLU);
  `tp = {m['tp_scale']} * expm1(relu(u))`.

## Loss

    L = {m['w_rec']} * mean (log1p(D(E(x))/s) - log1p(tp/s))^2                   reconstruction
      + {m['w_q']} * mean_k (pp_(k) - Phi^-1((k - 1/2)/N))^2                   quantile loss -> N(0, 1)
      + {m['w_order']} * mean (pp - Phi^-1((rank(key) - 1/2)/N))^2                 ordering

with `s = {m['tp_scale']}` mm/h, `pp_(k)` the sorted batch, `Phi^-1` the standard normal quantile,
and `key` ranking dry cells (tp <= {m.get('dry_threshold', 0)} mm/h) by -VIMD and every wet cell above them by tp
(ties by -VIMD): PP follows -VIMD where it is dry, rises with tp where it rains, and is continuous
across the rain edge. The first {train.get('warmup_fraction', 0):.0%} of the steps train the ordering term alone
(it fixes PP's orientation from any initialisation).

## Training

- data: {'; '.join(data_desc)}
- held-out split: every {round(1 / train['holdout_fraction'])}th day (datasets of 10+ days, so held-out days
  sample the same weather regimes) or the last {train['holdout_fraction']:.0%} of the hours of each day
  (shorter ones, such as the two-day ERA5 sample); never seen in training.
- several datasets: each batch takes the given share of cells from each, and the quantile and
  ordering terms are computed within each dataset's share (weighted by the shares).
- {train['steps']} Adam steps of {train['batch']} cells, one-cycle learning rate up to {train['lr']},
  seed {train['seed']}; batch shares per dataset: {train.get('shares')}.
- took {seconds:.0f} s on {hardware_text()}.
- command: `{command}`

## Held-out scores

Dry = tp == 0, wet = tp >= 0.1 mm/h. `wet_relative_mae` = sum|decoded - tp| / sum tp over wet cells.
KS is the Kolmogorov-Smirnov distance of PP from N(0, 1); its target applies to the synthetic data,
on whose distribution PP is trained to be standard normal. Real ERA5 drizzles where the synthetic
data are exactly dry, so its PP distribution differs; the KS is reported, not targeted.

{scores_table(scores, PP_TARGETS)}
## Limits

Trained mostly on ppviz's synthetic Europe, calibrated to two ERA5 days over 45-55N, 0-10E; the
real-sample scores come from a few held-out hours only. Retrain on real ERA5 before drawing
scientific conclusions.
"""


CURVE_BEGIN, CURVE_END = "<!-- student_curve:begin -->", "<!-- student_curve:end -->"


def _anchor_text(config: dict, rounds: list[dict]) -> str:
    # the card's sentence on anchored levels (DistillConfig.anchor_fraction), empty without
    if not config.get("anchor_fraction"):
        return ""
    where = "; ".join(f"round {r['round']}: level(s) {', '.join(r['anchored_levels'])} of the teacher grid "
                      f"to round(s) {', '.join(str(q) for q in r['anchored_levels'].values())}"
                      for r in rounds if r.get("anchored_levels"))
    return (f"\n\nOne network serves every stored step count, but a round only distils its own grid's levels;"
            f" so that the stored finer grids still work after the rounds to fewer steps, "
            f"{config['anchor_fraction']:.0%} of each batch in those rounds is trained at the finer grids' other "
            f"levels towards the frozen model of the last round that had them on its grid (same EDM weight): "
            f"{where or 'no round needed it'}.")


def student_model_card(name: str, *, teacher: str, teacher_sha256: str, teacher_schedule: dict, config: dict,
                       rounds: list[dict], schedule: dict, method: str, command: str, seconds: float,
                       data_desc: str, n_params: int, curve: str | None = None) -> str:
    """The MODEL_CARD.md of a few-step student (``ppviz train distill``). ``curve``: the markdown
    of :func:`student_curve_text` (None: a placeholder naming the command that measures it)."""
    rows = "\n".join(
        f"| {r['round']} | {r['teacher_steps']} -> {r['student_steps']} | {r['steps']} | "
        f"{_fmt(r['loss_first']) if r.get('loss_first') is not None else ''} | "
        f"{_fmt(r['loss_last']) if r.get('loss_last') is not None else ''} | {r['seconds']:.0f} |" for r in rounds)
    grids = "\n".join(f"- {k} step(s): " + ", ".join(f"{v:.4g}" for v in levels)
                      for k, levels in schedule["grids"].items())
    curve = curve or ("Not measured yet: run `python benchmarks/bench_steps.py --student "
                      f"pretrained/{name} --card` (writes the table and `student_curve.png` here).")
    return f"""# {name}: few-step student of {teacher}

A {min(int(k) for k in schedule['grids'])}-to-{max(int(k) for k in schedule['grids'])}-evaluation
student of the PP diffusion downscaler `{teacher}` (model.safetensors sha256 `{teacher_sha256}`):
the same network, distilled so that a member takes {', '.join(schedule['grids'])} network
evaluation(s) instead of the teacher's {config['teacher_steps']}. Same inputs, conditioning, residual
target and PP checkpoint as the teacher (see its card); members are fixed by their seeds as with
every ppviz checkpoint (the initial noise; the Euler sampler adds none).

## Method

{method[0].upper() + method[1:]}. Why this one: it needs no network or loss beyond the EDM denoiser, so the
student keeps ppviz's denoiser interface, preconditioning and per-member seeds. Each round
distils a teacher that takes 2m deterministic Euler steps into a student that takes m steps on
every other of its levels; the student starts from the teacher's weights and becomes the next
round's teacher. For a training residual y, a student level t (uniform over its grid), the teacher
level t' between and the next student level t'', with z_t = y + t eps, the frozen teacher's two
Euler steps give z_t''; the student's target is the denoised value D* for which one Euler step
from t lands there, D* = z_t - (z_t'' - z_t) t / (t'' - t), with EDM's loss weight
(t^2 + sigma_data^2) / (t sigma_data)^2 (the paper's SNR+1 weighting).{_anchor_text(config, rounds)} Implementation:
`ppviz/training/distill.py`; known-answer tests: `tests/test_distill.py`.

## Noise levels (stored in `config.json`, `config.schedule.grids`)

The teacher's Karras grid of {config['teacher_steps']} steps (sigma_min = {teacher_schedule['sigma_min']:g},
sigma_max = {teacher_schedule['sigma_max']:g}, rho = {teacher_schedule['rho']:g}); the student's grid of n steps is
every {config['teacher_steps']}/n-th of its levels, ending with 0, so the grids nest exactly:

{grids}

Sampler **{schedule['sampler']}** on these levels only, default **{schedule['default_steps']} step(s)**; any
other step count or sampler is refused with a message naming the allowed ones.

## Rounds

| round | Euler steps | Adam steps | loss, first window | loss, last window | seconds |
|---|---|---|---|---|---|
{rows}

- batch {config['batch_size']} random {config['crop']} x {config['crop']} crops of the training hours, Adam lr
  {config['lr']} decayed linearly to 0 in each round, seed {config['seed']}; {n_params / 1e6:.2f} M parameters.
- data: {data_desc}
- took {seconds / 60:.1f} min on {hardware_text()}.
- command: `{command}`

## Its curve next to the teacher's

{CURVE_BEGIN}
{curve}
{CURVE_END}

## Limits

Distilled on ppviz's synthetic Europe in minutes on a CPU, from a small teacher: a teaching and
QA model. A student is only as good as its teacher's {config['teacher_steps']}-step Euler samples,
and the fewer steps, the more it is off them (the curve above).
"""


def student_curve_text(rows: list[dict], teacher: str, student: str, command: str, meta: str,
                       png: str | None = None, teacher_steps: int | None = None) -> str:
    """The card's curve section: the student's rows of ``benchmarks/bench_steps.py`` next to the
    teacher's Heun-35 reference, its Euler and DPM-Solver++(2M) rows at the same evaluations and
    its Euler row at ``teacher_steps`` (what the student was distilled from), when measured."""
    head = ("| model | sampler | evals | fair CRPS (mm/h) | LSD 50-200 km (dB) | p99 / truth | p99.9 / truth | "
            "max abs PP | false drizzle | s / member |\n|---|---|---|---|---|---|---|---|---|---|")
    stu = sorted((r for r in rows if r.get("model") == "student"), key=lambda r: r["evals"])
    evals = {r["evals"] for r in stu}
    tea = sorted((r for r in rows if r.get("model", "teacher") == "teacher"
                  and ((r["sampler"] in ("euler", "dpmpp_2m") and r["evals"] in evals)
                       or (r["sampler"] == "euler" and r["evals"] == teacher_steps)
                       or (r["sampler"] == "heun" and r["evals"] == 35))),
                 key=lambda r: (r["evals"], r["sampler"]))

    def line(who, r):
        return (f"| {who} | {r['sampler']} | {r['evals']} | {r['crps']:.4f} | {r['lsd_db']:.2f} | {r['p99']:.2f} | "
                f"{r['p999']:.2f} | {r['max_abs_pp']:.2f} | {r['false_drizzle']:.4f} | {r['sec_per_member']:.3f} |")

    table = "\n".join([head] + [line(student, r) for r in stu] + [line(teacher, r) for r in tea])
    pic = f"\n\n![quality against evaluations, student and teacher]({png})" if png else ""
    return f"Measured with `{command}` ({meta}).\n\n{table}{pic}"


def write_curve(card_path, text: str) -> None:
    """Replace the curve section of a student's MODEL_CARD.md with ``text``."""
    from pathlib import Path

    path = Path(card_path)
    old = path.read_text()
    if CURVE_BEGIN not in old or CURVE_END not in old:
        raise ValueError(f"{path} has no student curve section ({CURVE_BEGIN} ... {CURVE_END})")
    path.write_text(old[: old.index(CURVE_BEGIN) + len(CURVE_BEGIN)] + "\n" + text + "\n" + old[old.index(CURVE_END):])
