"""Evaluation: classification metrics (accuracy, macro-F1, per-class recall, ECE, negative-vs-other AUC),
the evaluation of a model on a dataset split, and model-vs-model comparison.
"""

from fer_core.evaluation.compare import (
    PhotoComparison,
    compare_on_split,
    compare_photo,
    compare_photo_annotated,
    example_faces,
    photo_table,
)
from fer_core.evaluation.evaluate import (
    dataset_for_model,
    evaluate_split,
)
from fer_core.evaluation.metrics import (
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    roc_auc,
)

__all__ = [
    "PhotoComparison",
    "classification_report",
    "compare_on_split",
    "compare_photo",
    "compare_photo_annotated",
    "confusion_matrix",
    "dataset_for_model",
    "evaluate_split",
    "example_faces",
    "expected_calibration_error",
    "photo_table",
    "roc_auc",
]
