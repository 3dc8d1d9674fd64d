"""Face alignment: warp a detected face onto the FER2013 crop from its five landmarks.

FER2013 faces are roughly centred, upright 48x48 crops. :func:`align_face` maps YuNet's five
landmarks (eyes, nose tip, mouth corners) onto a template measured on real FER2013 faces
(:func:`measure_landmark_template`) with a similarity transform, warps at 4x and area-downsamples
to 48 px, so the classifier sees faces framed as in training.
"""

from __future__ import annotations

import cv2
import numpy as np

from fer_core.data.images import rgb_to_gray
from fer_core.inference.detect import Face, FaceDetector

#: Median YuNet landmarks on FER2013 Training faces, in 48x48 pixels: right eye, left eye, nose tip,
#: right and left mouth corner (from :func:`measure_landmark_template` on the first 600 Training faces;
#: ``tests/test_infer.py`` re-measures them on the real data).
FER_LANDMARKS = np.array(
    [[15.1, 18.3], [32.2, 18.2], [23.4, 28.5], [16.8, 35.4], [30.6, 35.7]], dtype=np.float32
)


#: Median YuNet box on FER2013 faces, (x, y, w, h) in 48x48 pixels.
FER_BOX = (5.25, -1.25, 37.0, 48.1)


_WORK = 4  # crops are warped at 4x (192 px) and then area-downsampled to 48 px


def measure_landmark_template(faces: np.ndarray, detector: FaceDetector) -> tuple[np.ndarray, int]:
    """Median YuNet landmarks of 48x48 faces, in 48x48 pixels.

    Each face is upscaled 4x (bicubic) and padded (edge replication) so that YuNet sees it whole.

    Args:
        faces: ``uint8 (N, 48, 48)`` grayscale faces (e.g. FER2013 Training).
        detector: a YuNet :class:`fer_core.inference.detect.FaceDetector` (low ``score_threshold`` and
            ``min_size`` suit these small faces).

    Returns:
        ``(float32 (5, 2) median landmarks, number of faces where one was found)``.
    """
    pts = []
    for face in faces:
        big = cv2.resize(face, (48 * _WORK, 48 * _WORK), interpolation=cv2.INTER_CUBIC)
        pad = 48 * _WORK // 2
        padded = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        found = detector.detect(cv2.cvtColor(padded, cv2.COLOR_GRAY2RGB))
        if found and found[0].landmarks is not None:
            pts.append((found[0].landmarks - pad) / _WORK)
    if not pts:
        return np.full((5, 2), np.nan, np.float32), 0
    return np.median(np.stack(pts), axis=0).astype(np.float32), len(pts)


def _gray_region(rgb: np.ndarray, m: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """The part of ``uint8 (H, W, 3)`` RGB that the warp ``m`` (2x3, image -> work crop) samples, widened by ``margin``
    pixels and clipped to the image, as BT.601 gray, and ``m`` moved to that part's pixels."""
    side = 48 * _WORK
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0, 1], [side, 0, 1], [0, side, 1], [side, side, 1]], np.float64) @ inv.T  # (4, 2)
    h, w = rgb.shape[:2]
    x0 = int(np.clip(np.floor(corners[:, 0].min() - margin), 0, w - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min() - margin), 0, h - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max() + margin) + 1, x0 + 1, w))
    y1 = int(np.clip(np.ceil(corners[:, 1].max() + margin) + 1, y0 + 1, h))
    moved = m.copy()
    moved[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    return rgb_to_gray(rgb[y0:y1, x0:x1]), moved


def align_face(image: np.ndarray, face: Face) -> np.ndarray:
    """Crop and align one face like FER2013's faces.

    Args:
        image: ``uint8 (H, W)`` grayscale or ``uint8 (H, W, 3)`` RGB image. Of an RGB image only the region the
            crop samples is converted to gray (BT.601, :func:`fer_core.data.images.rgb_to_gray`): the same crop as
            converting the whole image first, bit for bit, for faces up to twice the 192-px work size (larger ones
            are shrunk first and agree within interpolation error), at a fraction of the cost on big frames.
        face: detection in that image's pixels.

    Returns:
        ``uint8 (48, 48)`` face crop.
    """
    x, y, w, h = face.box
    if face.landmarks is not None:
        src = face.landmarks.astype(np.float32)
        m, _ = cv2.estimateAffinePartial2D(src, FER_LANDMARKS * _WORK, method=cv2.LMEDS)
    else:
        m = None
    if m is None:  # no landmarks, or degenerate ones: map the box onto FER2013's average box
        bx, by, bw, bh = FER_BOX
        s = _WORK * bw / max(w, 1)
        m = np.array([[s, 0, _WORK * bx - s * x], [0, s, _WORK * by - s * y]], dtype=np.float64)
    scale = float(np.hypot(m[0, 0], m[0, 1]))
    src_img = image
    if image.ndim == 3:  # bilinear reads one pixel beyond; a shrunk copy's pixel spans 1/scale of the original
        src_img, m = _gray_region(image, m, margin=2.0 + (2.0 / scale if scale < 0.5 else 0.0))
    if scale < 0.5:  # shrink first with area interpolation so the warp does not alias
        f = min(1.0, 2.0 * scale)
        src_img = cv2.resize(src_img, (max(1, round(src_img.shape[1] * f)), max(1, round(src_img.shape[0] * f))),
                             interpolation=cv2.INTER_AREA)
        m = m.copy()
        m[:, :2] /= f
    work = cv2.warpAffine(src_img, m, (48 * _WORK, 48 * _WORK), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(work, (48, 48), interpolation=cv2.INTER_AREA)
