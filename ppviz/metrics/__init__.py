"""Metrics with written contracts (dims in, dims out, units, NaN and dry-cell policy).

Library only (never imports Panel).  Fields are ``xarray.DataArray`` in mm/h with dims
``(member, time, lat, lon)`` (ensembles) or ``(time, lat, lon)`` (truth, baselines); numpy arrays
get those dims right-aligned.  Each function's docstring holds its full contract; in brief:

=============================  ===========================================  ===================================
function                       dims in -> dims out                          units; NaN / dry policy
=============================  ===========================================  ===================================
``mean_spectrum``              (..., lat, lon) -> (kept, wavenumber)        (mm/h)^2 km^2; NaN raises
``spectral_ratio``             (..., wavenumber) x2 -> same                 1; NaN where truth power is 0
``log_spectral_distance``      (..., wavenumber) x2 -> (...)                dB over a wavelength band
``mean_spectral_ratio``        (..., wavenumber) x2 -> (...)                1, mean over a band
``pooled_quantiles``           any -> (quantile, kept)                      mm/h; == np.quantile, NaN skipped
``percentile_maps``            (member, time, lat, lon) -> (pct, lat, lon)  mm/h; NaN skipped
``percentile_ratio_maps``      model, truth -> (percentile, lat, lon)       1; NaN where truth pct is 0
``wet_frequency``              any -> (threshold, kept)                     1 (value >= threshold)
``crps_ensemble``              (member, ...), (...) -> (...)                mm/h; fair by default; NaN if any
``crps_skill_score``           members, truth, baseline -> (kept)           1; baseline CRPS = its MAE
``rank_histogram``             (member, ...), (...) -> (rank,)              counts; ties at random, seeded
``spread_skill_ratio``         (member, ...), (...) -> (kept)               1; sqrt((M+1)/M var) / RMSE
``bias_map``                   forecast, truth -> (lat, lon)                mm/h; NaN pairs skipped
``fss``                        forecast, truth -> (threshold, scale, kept)  1; NaN cells are non-events
``gibbs_comparison``           tp, pp (..., ny, nx), decode -> dict         diagnostics of both routes
``EnsembleAccumulator``        ensemble Dataset chunks -> EnsembleMetrics   streaming, mergeable, picklable
``evaluate_chunks``            ensemble Dataset -> EnsembleAccumulator      time chunks, serial or dask client
=============================  ===========================================  ===================================

Dry cells (0 mm/h) are ordinary values everywhere: they enter quantiles and means, are never wet
or events, tie in ranks (broken at random) and are zeros in spectra.
"""

from ppviz.metrics.accumulate import (
    BiasAccumulator, CRPSAccumulator, ExactSum, FSSAccumulator, QuantileHistogramAccumulator,
    RankHistogramAccumulator, SpectrumAccumulator, SpreadSkillAccumulator, WetCountAccumulator,
)
from ppviz.metrics.distribution import (
    DEFAULT_PERCENTILES, DEFAULT_QUANTILE_LEVELS, DEFAULT_WET_THRESHOLDS, percentile_maps, percentile_ratio_maps,
    pooled_quantiles, wet_frequency,
)
from ppviz.metrics.ensemble import (
    absolute_error, crps_ensemble, crps_ensemble_pairwise, crps_ensemble_scores, crps_skill_score, rank_histogram,
    spread_skill_ratio, truth_ranks,
)
from ppviz.metrics.errors import DEFAULT_FSS_SCALES, DEFAULT_FSS_THRESHOLDS, bias_map, fss, fss_components
from ppviz.metrics.suite import EnsembleAccumulator, EnsembleMetrics, ensemble_dataset, evaluate_chunks, from_pipeline
from ppviz.metrics.gibbs import gibbs_comparison
from ppviz.metrics.spectra import (
    DEFAULT_BANDS_KM, field_spectra, log_spectral_distance, mean_spectral_ratio, mean_spectrum,
    spectral_band_scores, spectral_ratio,
)

__all__ = [
    "DEFAULT_BANDS_KM", "DEFAULT_FSS_SCALES", "DEFAULT_FSS_THRESHOLDS", "DEFAULT_PERCENTILES",
    "DEFAULT_QUANTILE_LEVELS", "DEFAULT_WET_THRESHOLDS", "BiasAccumulator", "CRPSAccumulator",
    "EnsembleAccumulator", "EnsembleMetrics", "ExactSum", "FSSAccumulator", "QuantileHistogramAccumulator",
    "RankHistogramAccumulator", "SpectrumAccumulator", "SpreadSkillAccumulator", "WetCountAccumulator",
    "absolute_error", "bias_map", "crps_ensemble", "crps_ensemble_pairwise", "crps_ensemble_scores",
    "crps_skill_score", "ensemble_dataset", "evaluate_chunks", "field_spectra", "from_pipeline", "fss",
    "fss_components",
    "gibbs_comparison", "log_spectral_distance", "mean_spectral_ratio", "mean_spectrum", "percentile_maps",
    "percentile_ratio_maps", "pooled_quantiles", "rank_histogram", "spectral_band_scores", "spectral_ratio",
    "spread_skill_ratio", "truth_ranks", "wet_frequency",
]
