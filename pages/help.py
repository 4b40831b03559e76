"""The "how to read this" text of every page, in one place, and the collapsed card that shows it.

Each text says what a page shows and what to look for; it is the page's own literal Markdown
(no user input), shown by :func:`pages.safe.markdown`.
"""

from __future__ import annotations

import panel as pn

from pages.safe import markdown

HELP: dict[str, str] = {
    "downscale": """
**What you see.** The coarse input (1 deg cells: what a global model gives), the ensemble of
0.25 deg fields the diffusion model draws for it, their mean and spread, and the truth.

**What to look for.**
- *Members* should look like rain: sharp edges, showers, dry gaps. Each is one plausible fine field;
  they differ where the coarse input does not decide the detail.
- *Mean* is smooth by construction: it is the best single guess, not a realistic field.
- *Spread* is large at rain edges and in showers (uncertain), small where it is widely dry or widely raining.
- *Power spectra*: members should follow the truth down to short wavelengths; bicubic
  interpolation falls off (too smooth). On a dry hour all curves are tiny and scores near 0: pick a rainy one.
- *QQ*: points on the 1:1 line mean the members rain as hard as the truth in the wet tail.
""",
    "latent": """
**What you see.** TP, VIMD and the pseudo-precipitation (PP) that the encoder makes of them, PP's
distribution against N(0, 1), and the encoder/decoder curves.

**What to look for.**
- TP is zero over most of the map, so it has a spike at 0 and a long tail: hard to learn and
  to filter. PP is smooth everywhere: where it rains it follows TP, where it is dry it follows
  -VIMD (moisture convergence: how close the air is to raining).
- The histogram of PP should sit on the N(0, 1) curve; a shifted or skewed one means the PP model
  does not fit these data.
- Decoding PP gives TP back exactly, with 0 for the whole dry half of PP space.
""",
    "gibbs": """
**What you see.** TP cut off spectrally (only wavelengths longer than the cutoff kept) next to PP
cut off the same way and decoded back to TP, a profile across the sharpest rain edge, and the counts.

**Where ringing comes from.** A rain edge is a jump from 0 to mm/h. A jump needs every
wavelength; cutting the short ones leaves oscillations on both sides of the edge (the Gibbs
phenomenon): negative rain (red x) beside it and drizzle (magenta o) where it was dry.

**Why PP does not ring.** PP is smooth across the rain edge (in the dry part it follows
-VIMD instead of sitting at 0), so it has little short-wave power to lose; and the decoder maps
every negative PP to exactly 0 rain, so no negative rain and almost no false drizzle appear.
Move the cutoff: the TP counts grow with it, PP's stay near 0.
""",
    "evaluation": """
**What you see.** Scores of the ensemble over a range of hours against the truth, beside simple
baselines (bicubic, nearest, PP bicubic).

**What to look for.**
- *CRPS vs MAE*: the ensemble's CRPS should be below the baselines' MAE (lower is better).
- *Rank histogram*: flat means calibrated; a U means too little spread (over-confident), a dome too much.
- *Power spectra* and *QQ*: realistic small scales and heavy-rain tail (baselines are too smooth and too weak).
- *log2(ensemble / truth) maps*: 0 (white) is right; red cells rain too much, blue too little at that percentile.
""",
    "checkpoints": """
**What you see.** The registered models with their cards, an A/B comparison of two checkpoints on
the same hour, region and member seeds, and the denoising trajectory of member 0.

**What to look for.**
- A/B: same seeds, so differences are the models'. Compare the spectra (short wavelengths) and QQ
  (heavy rain) more than single maps.
- Trajectory: the sampler starts from noise (large sigma) and removes it step by step; the
  denoised estimate settles on large shapes first and fine detail last. Few steps leave it blurry.
- The model card says what data and settings each checkpoint was trained on and its held-out scores.
""",
    "training_runs": """
**What you see.** A training run below `PPVIZ_RUNS` as it trains: the loss logged every few
steps, and the held-out scores of its snapshots (every `--snapshot-every` steps the EMA weights
are saved and scored on the same held-out hours, region and seeds). The curves follow the log
while the run is going. Below: two snapshots, of this run or any other, on the same hour, region
and member seeds.

**What to look for.**
- *Loss* falls fast, then slowly and noisily: it is an average over random noise levels, so a
  flat loss does not mean the samples stopped improving. Judge the snapshots by their scores.
- *Fair CRPS* should fall; *LSD 50-200 km* (how far the members' spectrum is from the truth's
  at small scales) should fall towards 0; the *p99 ratio* should approach 1 (heavy rain as heavy
  as the truth); the *wet fraction* should meet the dashed truth line (no drizzle everywhere,
  no rain missing).
- Scores on a couple of hours are noisy: a snapshot that is better on every score, and looks
  right in the A/B maps and spectra, is worth promoting. *Promote* registers it as a checkpoint
  with a model card holding these scores.
""",
    "data": """
**What you see.** The chosen dataset at the shared hour and region: hourly total precipitation
(TP, mm/h, log scale, dry cells clear) and vertically integrated moisture divergence (VIMD, mm/h).

**What to look for.** Rain falls mostly where VIMD is negative (blue: moisture converges).
Where it is dry, VIMD still varies smoothly: it is the information the PP encoder adds to the dry
part of the map. With the ERA5 sample these are real reanalysis fields (2020-01-01: winter
fronts; 2022-08-31: summer showers); with the synthetic Europe they are generated.
""",
}


def how_to_read(page: str) -> pn.Card:
    """A collapsed card "How to read this" with ``page``'s text from :data:`HELP`."""
    return pn.Card(markdown(HELP[page].strip(), sizing_mode="stretch_width"), title="How to read this",
                   collapsed=True, sizing_mode="stretch_width", css_classes=["ppviz-help"],
                   margin=(0, 0, 8, 0))
