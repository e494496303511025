"""Scoring a trained model: ``evaluator.py`` runs the passes, as ``settings.py`` configures
them, and writes the results; one file per job: the metrics (``metrics.py``), t-SNE, PCA and the
projector (``embeddings.py``), the training curves read from the logs (``curves.py``), and the
run's figures (``run_figures.py``)."""

from wae_lightning.evaluation.evaluator import Evaluator
from wae_lightning.evaluation.metrics import EvaluationError, metric_infos, metric_names
from wae_lightning.evaluation.settings import EvaluationSettings

__all__ = ["EvaluationError", "EvaluationSettings", "Evaluator", "metric_infos", "metric_names"]
