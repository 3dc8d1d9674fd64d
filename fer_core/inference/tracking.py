"""Following faces from frame to frame: IoU association of detections, and optical-flow motion.

* :func:`assign_tracks` gives each new detection the id of the previous box it overlaps most
  (greedy, IoU >= ``min_iou``), or a fresh id: used by the video pipeline and the live webcam.
* :func:`follow_points` moves points (a face's five landmarks) from one grayscale frame to the next
  with pyramidal Lucas-Kanade optical flow (``cv2.calcOpticalFlowPyrLK``; Bouguet 2000) and keeps
  only points that pass the forward-backward check of the Median-Flow tracker (Kalal, Mikolajczyk &
  Matas 2010, "Forward-Backward Error: Automatic Detection of Tracking Failures");
  :func:`move_face` turns the surviving points into a similarity transform
  (``cv2.estimateAffinePartial2D``) and applies it to the face's box and landmarks. This lets a live
  pipeline run the detector on every n-th frame only.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fer_core.inference.detect import Face

_LK = {"winSize": (15, 15), "maxLevel": 2,
       "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes, in [0, 1] (0 for empty boxes)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def assign_tracks(prev: dict[int, Sequence[float]], boxes: Sequence[Sequence[float]], next_id: int,
                  min_iou: float = 0.3) -> tuple[list[int], int]:
    """Track ids for new boxes, by greedy IoU matching against the previous boxes.

    Each box, in order (put the most reliable first, e.g. the largest), takes the id of the still
    unmatched previous box it overlaps most if that IoU is at least ``min_iou``, else ``next_id``
    (which then increases).

    Args:
        prev: ``{track id: (x, y, w, h)}`` of the previous frame.
        boxes: this frame's ``(x, y, w, h)`` boxes.
        next_id: the first unused id.

    Returns:
        ``(ids, next_id)``: one id per box, and the next unused id.
    """
    ids: list[int] = []
    free = dict(prev)
    for box in boxes:
        best = max(free.items(), key=lambda kv: iou(kv[1], box), default=None)
        if best is not None and iou(best[1], box) >= min_iou:
            ids.append(best[0])
            del free[best[0]]
        else:
            ids.append(next_id)
            next_id += 1
    return ids, next_id


def follow_points(prev_gray: np.ndarray, gray: np.ndarray, points: np.ndarray,
                  max_fb_error: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Where points of ``prev_gray`` are in ``gray`` (Lucas-Kanade flow with a forward-backward check).

    Args:
        prev_gray, gray: ``uint8 (H, W)`` consecutive frames, same size.
        points: ``float (N, 2)`` (x, y) in those frames' pixels.
        max_fb_error: a point is kept only if tracking it forward and then back lands within this
            many pixels of where it started.

    Returns:
        ``(float32 (N, 2) new positions, bool (N,) ok)``; positions of points that are not ok are
        meaningless.

    Raises:
        ValueError: the frames differ in size or are not 2-D ``uint8``.
    """
    if prev_gray.shape != gray.shape or gray.ndim != 2 or gray.dtype != np.uint8 or prev_gray.dtype != np.uint8:
        raise ValueError(f"follow_points needs two uint8 (H, W) frames of one size, got {prev_gray.dtype} "
                         f"{prev_gray.shape} and {gray.dtype} {gray.shape}")
    p0 = np.asarray(points, np.float32).reshape(-1, 1, 2)
    if len(p0) == 0:
        return np.zeros((0, 2), np.float32), np.zeros(0, bool)
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, p0, None, **_LK)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(gray, prev_gray, p1, None, **_LK)
    fb = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
    ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb <= max_fb_error)
    return p1.reshape(-1, 2), ok


def face_points(face: Face) -> np.ndarray:
    """Points to follow on a face: its five landmarks, or (no landmarks, e.g. Haar) a 3x3 grid
    over the middle of its box. ``float32 (N, 2)`` (x, y) in image pixels."""
    if face.landmarks is not None:
        return np.asarray(face.landmarks, np.float32).reshape(-1, 2)
    x, y, w, h = face.box
    gx, gy = np.meshgrid(x + w * np.array([0.3, 0.5, 0.7]), y + h * np.array([0.35, 0.55, 0.75]))
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


def move_face(face: Face, prev_gray: np.ndarray, gray: np.ndarray, scale: float = 1.0,
              image_size: tuple[int, int] | None = None) -> Face | None:
    """The face moved by the optical flow between two frames.

    The points of :func:`face_points` are followed with :func:`follow_points` on frames that may be
    a downscaled copy (``scale`` = copy pixels per image pixel); with three or more surviving
    points a similarity transform (rotation, uniform scale, shift; a robust least-median-of-squares
    fit, ``cv2.estimateAffinePartial2D`` with LMEDS) is fitted, with two the median shift is used.
    The box keeps its aspect ratio: its centre is moved and its size scaled by the transform.

    Args:
        face: the face in the previous frame, in image pixels.
        prev_gray, gray: ``uint8 (h, w)`` previous and current frame (possibly downscaled).
        scale: size of those frames relative to the image ``face`` is in (e.g. 0.5).
        image_size: ``(width, height)`` of the image, to clip the box; None for no clipping.

    Returns:
        The moved :class:`fer_core.inference.detect.Face` (same score), or None when fewer than two points
        could be followed (the face is lost, e.g. it left the frame or was covered).
    """
    pts = face_points(face)
    new, ok = follow_points(prev_gray, gray, pts * scale)
    if ok.sum() < 2:
        return None
    src, dst = pts[ok], new[ok] / scale
    m = None
    if ok.sum() >= 3:
        m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if m is None:
        shift = np.median(dst - src, axis=0)
        m = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]])
    s = float(np.hypot(m[0, 0], m[1, 0]))
    x, y, w, h = face.box
    cx, cy = m @ np.array([x + w / 2, y + h / 2, 1.0])
    nw, nh = w * s, h * s
    x0, y0, x1, y1 = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if image_size is not None:
        x0, y0 = max(0.0, x0), max(0.0, y0)
        x1, y1 = min(float(image_size[0]), x1), min(float(image_size[1]), y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    box = (int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0)))
    landmarks = None
    if face.landmarks is not None:
        lm = np.asarray(face.landmarks, np.float64).reshape(-1, 2)
        landmarks = (lm @ m[:, :2].T + m[:, 2]).astype(np.float32)
    return Face(box, face.score, landmarks)
