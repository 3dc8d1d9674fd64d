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

import numpy as np

from fer_core.data.images import ImageError, ImageSource, decode_image, face_to_48, load_image, rgb_to_gray
from fer_core.inference.align import align_face
from fer_core.inference.detect import Face, FaceDetector
from fer_core.inference.overlay import annotate
from fer_core.models.checkpoint import Checkpoint
from fer_core.models.predict import classify_faces

SAMPLE_PHOTO = Path(__file__).resolve().parent.parent / "assets" / "astronaut.jpg"


def load_face_image(src: ImageSource, name: str | None = None) -> np.ndarray:
    """A face image (already cropped to the face, any size or colour mode) as ``uint8 (48, 48)`` gray.

    Args:
        src: path, bytes, file object, PIL image or array.
        name: how error messages name the image (default: the path or the file object's name).

    Raises:
        fer_core.data.images.ImageError: not a readable image (or an empty file); the message names it.
    """
    return face_to_48(rgb_to_gray(load_image(src, name=name)))


#: Photos are decoded with their longer side reduced towards (never below) this many pixels where the format allows
#: it cheaply (JPEG); faces stay far larger than the 48x48 crops the model sees.
DECODE_MAX_SIDE = 1600


def detect_and_align(rgb: np.ndarray, detector: FaceDetector, max_faces: int = 100) -> tuple[list[Face], np.ndarray]:
    """Detect the faces in an image and crop each one aligned like FER2013's faces.

    Args:
        rgb: ``uint8 (H, W, 3)`` RGB image.
        detector: a :class:`fer_core.inference.detect.FaceDetector`.
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
    return faces, np.stack([align_face(rgb, f) for f in faces])  # (N, 48, 48): gray only around each face


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
    name: str | None = None,
) -> list[dict]:
    """Every face in a photo with its emotion.

    Args:
        image: path, bytes, file object, PIL image or ``uint8 (H, W, 3)`` RGB array.
        checkpoint: the emotion model.
        detector: a :class:`fer_core.inference.detect.FaceDetector`.
        max_faces: classify at most this many faces (the largest).
        name: how error messages name the image (default: the path or the file object's name).

    Returns:
        One dict per face, largest first: ``box`` ([x, y, w, h] in the original image's pixels),
        ``score`` (detector), ``landmarks`` (5x[x, y] or None) and :func:`classify_faces`'s fields.

    Raises:
        fer_core.data.images.ImageError: the image cannot be decoded, is empty or is too large; the
            message names it.
    """
    rgb, scale = decode_image(image, max_side=DECODE_MAX_SIDE, name=name)
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
        data: the uploaded bytes (or any :data:`fer_core.data.images.ImageSource`).
        name: file name (or path), for messages: ``error`` starts with it.
        blur: blur the faces in the annotated image.

    Returns:
        :class:`PhotoResult`; ``error`` names the file and says what was wrong with it when it is unreadable
        (e.g. ``"big.jpg: 120 MP is over the 64 MP limit"``, ``"empty.png: the file is empty (not an image)"``).
    """
    try:
        rgb, scale = decode_image(data, max_side=DECODE_MAX_SIDE, name=name)
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
