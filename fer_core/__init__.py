"""fer_core: facial emotion recognition with ordinary and differentially private training.

The library behind the Streamlit app: data loading (:mod:`fer_core.data`), models
(:mod:`fer_core.models`), training (:mod:`fer_core.training.lifecycle`), metrics (:mod:`fer_core.evaluation.metrics`),
self-describing checkpoints (:mod:`fer_core.models.checkpoint`) and the command line
(``python -m fer_core``).
"""

from __future__ import annotations

__version__ = "0.1.0"

#: FER2013 class ids 0-6, in the order of the dataset's ``emotion``/``label`` column.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: FER+ classes (Barsoum et al. 2016), in the order of the vote columns of ``ferplus_votes``.
FERPLUS_EMOTIONS: tuple[str, ...] = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt")

#: Label sets a model can be trained on: name -> class names (index = class id).
LABEL_SETS: dict[str, tuple[str, ...]] = {"fer2013": EMOTIONS, "ferplus": FERPLUS_EMOTIONS}

#: Display titles of the label sets (README, Models page, model picker); with the class count: ``FER+ (8)``.
LABEL_SET_TITLES: dict[str, str] = {"fer2013": "FER2013", "ferplus": "FER+"}

#: Emotions the product calls out as negative.
NEGATIVE_EMOTIONS: frozenset[str] = frozenset({"angry", "disgust", "fear", "sad", "contempt"})

__all__ = ["EMOTIONS", "FERPLUS_EMOTIONS", "LABEL_SETS", "LABEL_SET_TITLES", "NEGATIVE_EMOTIONS", "__version__"]
