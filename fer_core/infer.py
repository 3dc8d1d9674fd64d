"""Inference: image -> faces -> aligned 48x48 crops -> the model's preprocessing -> emotions.

:func:`analyze_image` runs the whole pipeline on a photo; :func:`classify_faces` classifies crops
that are already aligned (what FER2013 holds). Alignment maps the detector's five landmarks onto
where they sit, on average, in FER2013 faces (measured by running YuNet on 600 upscaled Training
faces), with a similarity transform (``cv2.estimateAffinePartial2D``); without landmarks (Haar) the
box is mapped onto FER2013's average face box. Everything happens in memory.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fer_core import NEGATIVE_EMOTIONS
from fer_core.checkpoints import Checkpoint
from fer_core.detect import Face, FaceDetector
from fer_core.evaluate import predict_proba
from fer_core.images import ImageSource, decode_image, face_to_48, load_image, rgb_to_gray

SAMPLE_PHOTO = Path(__file__).resolve().parent / "assets" / "astronaut.jpg"

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
        detector: a YuNet :class:`fer_core.detect.FaceDetector` (low ``score_threshold`` and
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


def face_probabilities(checkpoint: Checkpoint, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities of face crops, with the checkpoint card's preprocessing.

    Args:
        checkpoint: from :func:`fer_core.checkpoints.load_checkpoint`.
        faces: ``uint8 (N, 48, 48)`` grayscale face crops, 0-255.
        batch_size: faces per forward pass.

    Returns:
        ``float32 (N, K)`` softmax probabilities, columns in ``checkpoint.classes`` order.

    Raises:
        ValueError: ``faces`` is not ``uint8 (N, 48, 48)``.
    """
    faces = np.asarray(faces)
    if faces.dtype != np.uint8 or faces.ndim != 3 or faces.shape[1:] != (48, 48):
        raise ValueError(f"faces must be uint8 (N, 48, 48), got {faces.dtype} {faces.shape}")
    pre = checkpoint.card.get("preprocessing", {})
    return predict_proba(checkpoint.model, faces, batch_size, mean=pre.get("mean", 0.5), std=pre.get("std", 0.25))


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
    probs = face_probabilities(checkpoint, faces, batch_size)
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


def compiled(checkpoint: Checkpoint, warmup_batch: int = 64) -> Checkpoint:
    """A copy of ``checkpoint`` whose classifier is ``torch.compile``d (the original is left untouched).

    For long jobs (videos, folders of photos): compiling costs ~20-40 s once on a CPU, after which
    batches of faces run ~1.5x faster (``benchmarks/bench_infer.py --compile``). The returned
    checkpoint is warmed up on one ``(warmup_batch, 1, 48, 48)`` batch (and batch 1), so the compile
    cost is paid here and not inside the first prediction.

    Returns:
        A :class:`~fer_core.checkpoints.Checkpoint` sharing the card and weights, with the compiled model.

    Raises:
        RuntimeError: compilation failed (e.g. no C++ compiler for TorchInductor); the message says
            to run without ``--compile``.
    """
    import copy

    import torch

    model = copy.deepcopy(checkpoint.model).eval()
    fast = torch.compile(model, dynamic=True)
    try:
        with torch.inference_mode():
            for b in (warmup_batch, 1):
                fast(torch.zeros(b, 1, 48, 48))
    except Exception as exc:  # inductor raises many types (missing compiler, unsupported op ...)
        raise RuntimeError(f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); "
                           "run without --compile") from exc
    return Checkpoint(model=fast, card=checkpoint.card, path=checkpoint.path)


def load_face_image(src: ImageSource) -> np.ndarray:
    """A face image (already cropped to the face, any size or colour mode) as ``uint8 (48, 48)`` gray.

    Raises:
        fer_core.images.ImageError: not a readable image.
    """
    return face_to_48(rgb_to_gray(load_image(src)))


#: Photos are decoded with their longer side reduced towards (never below) this many pixels where the format allows
#: it cheaply (JPEG); faces stay far larger than the 48x48 crops the model sees.
DECODE_MAX_SIDE = 1600


def detect_and_align(rgb: np.ndarray, detector: FaceDetector, max_faces: int = 100) -> tuple[list[Face], np.ndarray]:
    """Detect the faces in an image and crop each one aligned like FER2013's faces.

    Args:
        rgb: ``uint8 (H, W, 3)`` RGB image.
        detector: a :class:`fer_core.detect.FaceDetector`.
        max_faces: keep at most this many faces (the largest).

    Returns:
        ``(faces, crops)``: the detections, largest first, in ``rgb``'s pixels, and their
        ``uint8 (N, 48, 48)`` aligned crops (``N = 0`` when there is no face).

    Raises:
        ValueError: ``rgb`` is not a ``uint8 (H, W, 3)`` array.
    """
    faces = detector.detect(rgb)[:max_faces]
    if not faces:
        return [], np.zeros((0, 48, 48), np.uint8)
    gray = rgb_to_gray(rgb)
    return faces, np.stack([align_face(gray, f) for f in faces])  # (N, 48, 48)


def face_fields(face: Face) -> dict:
    """A detection as record fields: ``box`` ([x, y, w, h]), ``score`` and ``landmarks`` (5x[x, y] or None)."""
    return {"box": list(face.box), "score": face.score,
            "landmarks": None if face.landmarks is None else face.landmarks.round(1).tolist()}


def _analyze_rgb(rgb: np.ndarray, checkpoint: Checkpoint, detector: FaceDetector, max_faces: int) -> list[dict]:
    faces, crops = detect_and_align(rgb, detector, max_faces)
    if not faces:
        return []
    records = classify_faces(checkpoint, crops)
    return [{**face_fields(f), **r} for f, r in zip(faces, records, strict=True)]


def rescale_records(records: list[dict], factor: float) -> list[dict]:
    """Records with boxes and landmarks multiplied by ``factor`` (new dicts)."""
    if factor == 1.0:
        return [dict(r) for r in records]
    out = []
    for r in records:
        r = dict(r)
        r["box"] = [int(round(v * factor)) for v in r["box"]]
        if r.get("landmarks") is not None:
            r["landmarks"] = [[round(x * factor, 1), round(y * factor, 1)] for x, y in r["landmarks"]]
        out.append(r)
    return out


def analyze_image(
    image: ImageSource | np.ndarray,
    checkpoint: Checkpoint,
    detector: FaceDetector,
    max_faces: int = 100,
) -> list[dict]:
    """Every face in a photo with its emotion.

    Args:
        image: path, bytes, file object, PIL image or ``uint8 (H, W, 3)`` RGB array.
        checkpoint: the emotion model.
        detector: a :class:`fer_core.detect.FaceDetector`.
        max_faces: classify at most this many faces (the largest).

    Returns:
        One dict per face, largest first: ``box`` ([x, y, w, h] in the original image's pixels),
        ``score`` (detector), ``landmarks`` (5x[x, y] or None) and :func:`classify_faces`'s fields.

    Raises:
        fer_core.images.ImageError: the image cannot be decoded or is too large.
    """
    rgb, scale = decode_image(image, max_side=DECODE_MAX_SIDE)
    return rescale_records(_analyze_rgb(rgb, checkpoint, detector, max_faces), 1.0 / scale)


@dataclass
class PhotoResult:
    """What the Photo page shows for one image.

    Attributes:
        name: the file name given by the user.
        records: one dict per face (see :func:`analyze_image`); empty if no face or on error.
        annotated: ``uint8 (H, W, 3)`` RGB image with boxes and labels (faces blurred if asked), or
            None on error.
        error: a one-line message when the image could not be read, else None.
    """

    name: str
    records: list[dict] = field(default_factory=list)
    annotated: np.ndarray | None = None
    error: str | None = None

    @property
    def negative_faces(self) -> list[int]:
        """1-based numbers of the faces whose emotion is negative."""
        return [i + 1 for i, r in enumerate(self.records) if r["negative"]]


def analyze_photo(data: ImageSource, name: str, checkpoint: Checkpoint, detector: FaceDetector,
                  blur: bool = False) -> PhotoResult:
    """Decode, detect, classify and annotate one user photo, in memory; never raises on bad input.

    Args:
        data: the uploaded bytes (or any :data:`fer_core.images.ImageSource`).
        name: file name, for messages.
        blur: blur the faces in the annotated image.

    Returns:
        :class:`PhotoResult`; ``error`` says what was wrong with an unreadable image.
    """
    from fer_core.images import ImageError
    from fer_core.overlay import annotate

    try:
        rgb, scale = decode_image(data, max_side=DECODE_MAX_SIDE)
    except ImageError as exc:
        return PhotoResult(name=name, error=str(exc).replace("<", "").replace(">", ""))
    records = _analyze_rgb(rgb, checkpoint, detector, max_faces=100)
    for i, r in enumerate(records):
        r["face"] = i + 1
    annotated = annotate(rgb, records, blur=blur)  # drawn at the decoded size
    return PhotoResult(name=name, records=rescale_records(records, 1.0 / scale), annotated=annotated)


EXPORT_FIELDS = ("image", "face", "label", "confidence", "negative", "x", "y", "w", "h", "detector_score")


def records_to_rows(results: list[PhotoResult]) -> list[dict]:
    """Flat rows (one per face, no image data) for CSV/JSON downloads."""
    rows = []
    for res in results:
        for r in res.records:
            x, y, w, h = r["box"]
            row = {"image": res.name, "face": r.get("face"), "label": r["label"],
                   "confidence": round(r["confidence"], 4), "negative": r["negative"], "x": x, "y": y, "w": w,
                   "h": h, "detector_score": round(r["score"], 4)}
            row.update({f"p_{k}": round(v, 4) for k, v in r["probabilities"].items()})
            rows.append(row)
    return rows


def records_to_csv(results: list[PhotoResult]) -> str:
    """CSV text of :func:`records_to_rows` (header included)."""
    rows = records_to_rows(results)
    buf = io.StringIO()
    fields = list(dict.fromkeys([*EXPORT_FIELDS, *(k for r in rows for k in r)]))
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def records_to_json(results: list[PhotoResult]) -> str:
    """JSON text: ``[{"image", "faces": [records without landmarks]}]``."""
    return json.dumps(
        [{"image": r.name, "error": r.error,
          "faces": [{k: v for k, v in rec.items() if k != "landmarks"} for rec in r.records]} for r in results],
        indent=2,
    )
