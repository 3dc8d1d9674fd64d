"""Face alignment: warp a detected face onto the FER2013 crop from its five landmarks.

FER2013 faces are roughly centred, upright 48x48 crops. :func:`align_face` maps YuNet's five
landmarks (eyes, nose tip, mouth corners) onto a template measured on real FER2013 faces
(:func:`measure_landmark_template`) with a similarity transform, warps at 4x and area-downsamples
to 48 px, so the classifier sees faces framed as in training.
"""

from __future__ import annotations

import cv2
import numpy as np

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


def align_face(gray: np.ndarray, face: Face) -> np.ndarray:
    """Crop and align one face like FER2013's faces.

    Args:
        gray: ``uint8 (H, W)`` grayscale image.
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
    src_img = gray
    if scale < 0.5:  # shrink first with area interpolation so the warp does not alias
        f = min(1.0, 2.0 * scale)
        src_img = cv2.resize(gray, (max(1, round(gray.shape[1] * f)), max(1, round(gray.shape[0] * f))),
                             interpolation=cv2.INTER_AREA)
        m = m.copy()
        m[:, :2] /= f
    work = cv2.warpAffine(src_img, m, (48 * _WORK, 48 * _WORK), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(work, (48, 48), interpolation=cv2.INTER_AREA)
