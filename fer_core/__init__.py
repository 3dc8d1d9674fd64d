"""fer_core: facial emotion recognition with ordinary and differentially private training.

The library behind the Streamlit app, one subpackage per concept: :mod:`fer_core.data` (datasets,
FER+ labels, images, preprocessing, augmentation), :mod:`fer_core.models` (architectures, the
checkpoint and its card, prediction), :mod:`fer_core.privacy` (DP-SGD, accounting),
:mod:`fer_core.training` (one lifecycle; plain and private strategies), :mod:`fer_core.inference`
(detection, alignment, photos, video, webcam), :mod:`fer_core.evaluation` (metrics, comparison),
:mod:`fer_core.results` (result files and the README report), :mod:`fer_core.audit`
(membership inference), :mod:`fer_core.app` (Streamlit helpers, for the app only) and the command
line (``python -m fer_core``, ``fer-core``). This module holds the label sets every part shares.
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
