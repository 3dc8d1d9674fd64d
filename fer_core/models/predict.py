"""Prediction from a checkpoint: class probabilities of aligned face crops with the card's preprocessing.

:func:`face_probabilities` is the one path from ``uint8`` face crops to probabilities (photos, video
frames, the webcam callback, Compare); :func:`classify_faces` adds labels and the negative call-out;
:func:`compiled` gives a ``torch.compile``'d copy of a checkpoint for long jobs.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from fer_core import EMOTIONS, NEGATIVE_EMOTIONS
from fer_core.data.preprocess import MEAN, STD, to_model_input
from fer_core.models.checkpoint import Checkpoint


@torch.no_grad()
def predict_proba(
    model: torch.nn.Module,
    faces: np.ndarray,
    batch_size: int = 256,
    mean: float = MEAN,
    std: float = STD,
    flip_tta: bool = False,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Class probabilities for a stack of faces.

    Args:
        model: a classifier (put in eval mode here, and restored afterwards).
        faces: ``uint8 (N, 48, 48)`` grayscale faces, 0-255.
        batch_size: faces per forward pass.
        mean, std: the model card's preprocessing constants.
        flip_tta: average the softmax of each face and its mirror image.
        device: where to run the model.

    Returns:
        ``float32 (N, K)`` softmax probabilities (rows sum to 1).

    A model with its own ``probabilities(faces, mean, std, batch_size, flip_tta)`` method (the ONNX Runtime
    path, :class:`fer_core.inference.runtime.OnnxModule`) computes them itself, without torch ops: at batch 1
    torch's per-op overhead costs more than the network.
    """
    own = getattr(model, "probabilities", None)
    if callable(own) and device in ("cpu", torch.device("cpu")):
        return own(np.asarray(faces), mean, std, batch_size, flip_tta)
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(faces), batch_size):
            x = to_model_input(faces[i: i + batch_size], mean, std).to(device)  # (B, 1, 48, 48)
            p = torch.softmax(model(x).float(), dim=1)
            if flip_tta:
                p = 0.5 * (p + torch.softmax(model(torch.flip(x, dims=[3])).float(), dim=1))
            out.append(p.cpu())
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, len(EMOTIONS)), np.float32)
    return torch.cat(out).numpy()


def face_probabilities(checkpoint: Checkpoint, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities of face crops, with the checkpoint card's preprocessing.

    Args:
        checkpoint: from :func:`fer_core.models.checkpoint.load_checkpoint`.
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
    pre = checkpoint.card.preprocessing
    return predict_proba(checkpoint.model, faces, batch_size, mean=pre.mean, std=pre.std)


def classify_faces(checkpoint: Checkpoint, faces: np.ndarray, batch_size: int = 64) -> list[dict]:
    """Emotion of each face.

    Args:
        checkpoint: from :func:`fer_core.models.checkpoint.load_checkpoint`.
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
        A :class:`~fer_core.models.checkpoint.Checkpoint` sharing the card and weights, with the compiled model.

    Raises:
        RuntimeError: compilation failed (e.g. no C++ compiler for TorchInductor); the message says
            to run without ``--compile``.
    """


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
