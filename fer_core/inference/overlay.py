"""Drawing results on images: boxes, labels, confidences, and face blurring for anonymised output.

All functions take ``uint8 (H, W, 3)`` RGB arrays and return a new array (inputs are not changed).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

NEGATIVE_RGB = (220, 40, 40)
OTHER_RGB = (40, 170, 80)


def blur_faces(rgb: np.ndarray, boxes: Sequence[Sequence[int]], margin: float = 0.15) -> np.ndarray:
    """Anonymise faces: each box (grown by ``margin`` of its size) is pixelated and blurred.

    Args:
        rgb: ``uint8 (H, W, 3)`` image.
        boxes: ``[x, y, w, h]`` per face, in pixels.
        margin: share of the box size added on each side.

    Returns:
        A new ``uint8 (H, W, 3)`` image; outside the boxes it equals ``rgb``.
    """
    out = rgb.copy()
    h, w = rgb.shape[:2]
    for x, y, bw, bh in boxes:
        mx, my = int(bw * margin), int(bh * margin)
        x0, y0 = max(0, x - mx), max(0, y - my)
        x1, y1 = min(w, x + bw + mx), min(h, y + bh + my)
        if x1 <= x0 or y1 <= y0:
            continue
        roi = out[y0:y1, x0:x1]
        rw, rh = x1 - x0, y1 - y0
        # Pixelate to ~8 blocks across, then blur the blocks: the identity is not recoverable.
        block = max(1, rw // 8)
        small = cv2.resize(roi, (max(1, rw // block), max(1, rh // block)), interpolation=cv2.INTER_AREA)
        big = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_NEAREST)
        roi[:] = cv2.GaussianBlur(big, (0, 0), sigmaX=max(1.0, rw / 16))
    return out


def annotate(rgb: np.ndarray, records: Sequence[dict], blur: bool = False) -> np.ndarray:
    """Draw each face's box with ``label confidence`` (red for negative emotions, green otherwise).

    Args:
        rgb: ``uint8 (H, W, 3)`` image.
        records: from :func:`fer_core.inference.pipeline.analyze_image` (need ``box``, ``label``, ``confidence``,
            ``negative``).
        blur: blur the faces first (see :func:`blur_faces`).

    Returns:
        A new annotated ``uint8 (H, W, 3)`` image.
    """
    out = blur_faces(rgb, [r["box"] for r in records]) if blur else rgb.copy()
    h, w = out.shape[:2]
    thick = max(1, round(max(h, w) / 500))
    font_scale = max(0.4, max(h, w) / 1400)
    for r in records:
        x, y, bw, bh = r["box"]
        color = NEGATIVE_RGB if r.get("negative") else OTHER_RGB
        cv2.rectangle(out, (x, y), (x + bw, y + bh), color, thick)
        text = f"{r['label']} {100 * r['confidence']:.0f}%"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
        ty = y - 4 if y - th - base - 4 >= 0 else min(h - base, y + bh + th + 4)
        cv2.rectangle(out, (x, ty - th - base), (min(w, x + tw + 4), ty + base), color, -1)
        cv2.putText(out, text, (x + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thick,
                    cv2.LINE_AA)
    return out
