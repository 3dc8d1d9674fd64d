"""Classifying faces with a loaded checkpoint.

:func:`classify_faces` takes aligned grayscale face crops (what FER2013 holds) and returns one
record per face; the photo pipeline (detection, cropping, alignment) builds on it.
"""

from __future__ import annotations

import numpy as np

from fer_core import NEGATIVE_EMOTIONS
from fer_core.checkpoints import Checkpoint
from fer_core.evaluate import predict_proba
from fer_core.images import ImageSource, face_to_48, load_image, rgb_to_gray


def classify_faces(checkpoint: Checkpoint, faces: np.ndarray, batch_size: int = 64) -> list[dict]:
    """Emotion of each face.

    Args:
        checkpoint: from :func:`fer_core.checkpoints.load_checkpoint`.
        faces: ``uint8 (N, 48, 48)`` grayscale face crops, 0-255.
        batch_size: faces per forward pass.

    Returns:
        One dict per face: ``label`` (str), ``confidence`` (probability of ``label``, 0-1),
        ``probabilities`` ({emotion: probability}, summing to 1), ``negative`` (bool: the label is
        one of angry, disgust, fear, sad, contempt).

    Raises:
        ValueError: ``faces`` is not ``uint8 (N, 48, 48)``.
    """
    faces = np.asarray(faces)
    if faces.dtype != np.uint8 or faces.ndim != 3 or faces.shape[1:] != (48, 48):
        raise ValueError(f"faces must be uint8 (N, 48, 48), got {faces.dtype} {faces.shape}")
    pre = checkpoint.card.get("preprocessing", {})
    probs = predict_proba(
        checkpoint.model, faces, batch_size, mean=pre.get("mean", 0.5), std=pre.get("std", 0.25)
    )
    names = checkpoint.classes
    records = []
    for p in probs:
        k = int(p.argmax())
        records.append({
            "label": names[k],
            "confidence": float(p[k]),
            "probabilities": {n: float(v) for n, v in zip(names, p, strict=True)},
            "negative": names[k] in NEGATIVE_EMOTIONS,
        })
    return records


def load_face_image(src: ImageSource) -> np.ndarray:
    """A face image (already cropped to the face, any size or colour mode) as ``uint8 (48, 48)`` gray.

    Raises:
        fer_core.images.ImageError: not a readable image.
    """
    return face_to_48(rgb_to_gray(load_image(src)))
