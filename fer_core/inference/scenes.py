"""Camera-like test frames made of real faces, for the webcam benchmark and the browser tests.

The faces come from the shipped sample portrait (``fer_core/assets/astronaut.jpg``, NASA, public
domain), so the frames are the same on every machine and may appear in committed screenshots
(FER2013's images carry no redistribution licence and are never used here). Each face is a crop of
the portrait (original, mirrored, or with another size, exposure and roll) pasted on a soft background;
the faces drift along smooth paths from frame to frame, like people in front of a webcam.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from fer_core.data.images import load_image
from fer_core.inference.pipeline import SAMPLE_PHOTO

#: The sample portrait's face with a margin, (x, y, w, h) in its 512x512 pixels (YuNet's box is
#: (178, 62, 91, 114)).
_FACE_CROP = (128, 20, 210, 230)
#: Per face slot: (centre x, centre y) as shares of the frame, scale, mirrored, exposure gain, roll (degrees).
_SLOTS = {
    1: [(0.5, 0.48, 1.3, False, 1.0, 0.0)],
    3: [(0.17, 0.42, 0.8, False, 1.0, 0.0), (0.5, 0.56, 0.85, True, 0.85, 0.0),
        (0.83, 0.42, 0.75, False, 1.15, 10.0)],
    # A crowd: two rows of five smaller faces, alternately mirrored, exposures and rolls varied.
    10: [(0.1 + 0.2 * c, 0.27 + 0.46 * r, 0.42 + 0.04 * ((c + r) % 3), (c + r) % 2 == 1,
          (0.85, 1.0, 1.15)[(c + 2 * r) % 3], (0.0, 8.0, -8.0)[(2 * c + r) % 3]) for r in range(2) for c in range(5)],
}


@functools.lru_cache(maxsize=1)
def _portrait_face() -> np.ndarray:

    x, y, w, h = _FACE_CROP
    return np.ascontiguousarray(load_image(SAMPLE_PHOTO)[y:y + h, x:x + w])


def _background(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    g = 150 + 40 * (yy / height) - 20 * (xx / width)
    return np.clip(np.stack([g, g + 8, g + 18], axis=2), 0, 255).astype(np.uint8)


def face_scene(n_faces: int, frame_index: int = 0, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """One frame with ``n_faces`` real faces, moved along smooth paths by ``frame_index``.

    Args:
        n_faces: 1, 3 or 10 faces.
        frame_index: position on the motion path (faces move up to ~1 px per frame and return to
            their start every 90 frames).
        size: ``(width, height)`` of the frame; the layout scales with it.

    Returns:
        ``uint8 (height, width, 3)`` RGB frame.

    Raises:
        ValueError: ``n_faces`` is not 1 or 3.
    """
    if n_faces not in _SLOTS:
        raise ValueError(f"face_scene makes frames with {', '.join(map(str, _SLOTS))} faces, not {n_faces}")
    width, height = size
    frame = _background(width, height)
    face = _portrait_face()
    k = height / 480
    for i, (cx, cy, scale, mirror, gain, roll) in enumerate(_SLOTS[n_faces]):
        tile = face[:, ::-1] if mirror else face
        th, tw = int(tile.shape[0] * scale * k), int(tile.shape[1] * scale * k)
        tile = cv2.resize(tile, (tw, th), interpolation=cv2.INTER_AREA)
        if roll:
            m = cv2.getRotationMatrix2D((tw / 2, th / 2), roll, 1.0)
            tile = cv2.warpAffine(tile, m, (tw, th), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if gain != 1.0:
            tile = np.clip(tile.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        phase = 2 * math.pi * (frame_index / 90 + i / len(_SLOTS[n_faces]))
        x = int(round(cx * width - tw / 2 + 12 * k * math.sin(phase)))
        y = int(round(cy * height - th / 2 + 10 * k * math.sin(2 * phase)))
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(width, x + tw), min(height, y + th)
        frame[y0:y1, x0:x1] = tile[y0 - y:y1 - y, x0 - x:x1 - x]
    return frame


def face_clip(n_faces: int, n_frames: int, size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """``n_frames`` consecutive :func:`face_scene` frames (``uint8 (H, W, 3)`` RGB each)."""
    return [face_scene(n_faces, i, size) for i in range(n_frames)]
