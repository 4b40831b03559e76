"""Evaluation of a downscaled ensemble: run, store, report.

- :mod:`ppviz.evaluation.run`: open a ``ppviz downscale`` output and score it
  (:func:`~ppviz.evaluation.run.evaluate_ensemble`: streaming metrics, percentile ratio maps,
  the Gibbs comparison of the truth).
- :mod:`ppviz.evaluation.store`: :class:`~ppviz.evaluation.store.EvaluationResult`, the one result
  type, and the evaluation directory (``metrics.json`` + ``metrics.nc``), written atomically by one
  writer and read back by one reader.
- :mod:`ppviz.evaluation.report`: the printed table; :mod:`ppviz.evaluation.figures`: the PNG figures.

The streaming metrics themselves are :mod:`ppviz.metrics`; the Evaluation page's job and the
directories it may read are :mod:`ppviz.views.evaluation`.
"""

from ppviz.evaluation.run import (
    DEFAULT_BASELINES, evaluate_ensemble, gibbs_of_truth, local_cluster_client, open_ensemble, parse_baselines,
)
from ppviz.evaluation.store import EvaluationResult, read_evaluation, save_evaluation, write_outputs

__all__ = ["DEFAULT_BASELINES", "EvaluationResult", "evaluate_ensemble", "gibbs_of_truth", "local_cluster_client",
           "open_ensemble", "parse_baselines", "read_evaluation", "save_evaluation", "write_outputs"]
