"""Model cards: the markdown that travels with every checkpoint."""

from __future__ import annotations

from ppviz.metrics.pp import PP_TARGETS


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
- took {seconds:.0f} s on this machine's CPU (2 cores).
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
