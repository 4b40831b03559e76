"""View-models of the dashboard pages: what each page shows, as plain functions (never imports Panel).

The pages in ``pages/`` only lay out widgets and plots; everything they show is computed here,
from the library (:mod:`ppviz.pipeline`, :mod:`ppviz.metrics`, :mod:`ppviz.spectral`), so it can
be tested and reused headless.

- :mod:`ppviz.views.cache`: the dataset, device, checkpoint choices, cached model loading,
  region parsing, coarse inputs without a diffusion model.
- :mod:`ppviz.views.runs`: one ensemble run as a queue job (progress, cancel, the denoising
  trajectory of one member), its cache key.
- :mod:`ppviz.views.highlights`: what the dashboard opens on (a region inside the data, its
  rainiest hour); :func:`ppviz.views.runs.warm` queues the landing run at server start.
- :mod:`ppviz.views.timeline`: a span of hours, one cell's time series, accumulated maps.
- :mod:`ppviz.views.curves`: spectra, quantiles (QQ), ensemble mean/spread and CRPS of a run;
  training curves of a checkpoint.
- :mod:`ppviz.views.latent`: the PP page (encoder surface, decoder curve, PP vs N(0, 1)).
- :mod:`ppviz.views.ringing`: the Gibbs page (truncation of TP and PP, marks, profile).
- :mod:`ppviz.views.evaluation`: metrics over a date range as a job; evaluation directories; the
  held-out evaluation shipped beside a checkpoint.
"""
