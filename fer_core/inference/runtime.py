"""The fast inference runtime: a checkpoint's classifier on ONNX Runtime, with torch as the reference path.

:func:`fast` returns a copy of a checkpoint whose ``model`` runs the same network on ONNX Runtime (the
network exported once, in memory, with a dynamic batch axis; one intra-op thread by default, which
holds its speed when another process busies a core). Every path that classifies faces
(:func:`fer_core.models.predict.face_probabilities`: photos, video frames, the webcam callback, Compare,
``predict``, ``evaluate``, ``bench``) takes it unchanged, since the copy is called like the torch
module. The export is checked against torch on a probe batch; a network that does not export (or
a missing ``onnxruntime``) keeps the torch module, and :attr:`Checkpoint.card` is never modified.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from fer_core.models.architectures import ScatterNet
from fer_core.models.checkpoint import Checkpoint

RUNTIMES = ("onnx", "torch")
#: Largest |difference| of a probability between the ONNX Runtime and torch paths that :func:`fast` accepts.
PROBABILITY_TOLERANCE = 1e-4


class RuntimeUnavailable(RuntimeError):
    """The network could not be exported to, or run on, ONNX Runtime; the message says why."""


class OnnxModule(nn.Module):
    """A torch-callable wrapper of an ONNX Runtime session: ``(B, 1, 48, 48)`` float32 in, ``(B, K)`` logits out."""

    def __init__(self, session: ort.InferenceSession) -> None:
        super().__init__()
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().to(torch.float32).cpu().numpy())  # (B, 1, 48, 48)
        (logits,) = self.session.run(None, {self.input_name: arr})  # (B, K)
        return torch.from_numpy(logits)

    def probabilities(self, faces: np.ndarray, mean: float, std: float, batch_size: int = 64,
                      flip_tta: bool = False) -> np.ndarray:
        """Softmax probabilities of ``uint8 (N, 48, 48)`` faces in numpy alone (no torch op on the way).

        The same arithmetic as :func:`fer_core.data.preprocess.to_model_input` (``(x / 255 - mean) / std``) and
        :func:`fer_core.models.predict.predict_proba`, called by the latter; returns ``float32 (N, K)``.
        """
        out = []
        for i in range(0, len(faces), batch_size):
            x = ((faces[i: i + batch_size].astype(np.float32) * np.float32(1.0 / 255.0) - np.float32(mean))
                 / np.float32(std))[:, None]  # (B, 1, 48, 48)
            p = _softmax(self.session.run(None, {self.input_name: x})[0])  # (B, K)
            if flip_tta:
                xf = np.ascontiguousarray(x[..., ::-1])
                p = 0.5 * (p + _softmax(self.session.run(None, {self.input_name: xf})[0]))
            out.append(p.astype(np.float32, copy=False))
        if not out:
            return np.zeros((0, self.session.get_outputs()[0].shape[1] or 0), np.float32)
        return np.concatenate(out)


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Row softmax of ``float32 (B, K)`` logits."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def set_inference_threads(threads: int) -> None:
    """Threads of torch and of OpenCV (resizing, warps, the reference YuNet path) for inference in this process; 0
    keeps their defaults. One holds its speed when another process busies a core, where one thread per core
    collapses (the ONNX Runtime sessions of :func:`fast` and of the YuNet detector take their own ``threads``)."""
    if threads > 0:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)


def onnx_session(model: nn.Module, threads: int = 1) -> ort.InferenceSession:
    """Export ``model`` (input ``(B, 1, 48, 48)`` float32) to ONNX in memory and open a CPU session.

    Raises:
        RuntimeUnavailable: the export or the session failed.
    """
    probe = torch.zeros(2, 1, 48, 48)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), (probe,), buf, input_names=["faces"], output_names=["logits"],
                              dynamic_axes={"faces": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                              dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # the exporter and ORT raise many types; all mean "use torch"
        detail = " ".join(str(exc).split())[:200]
        raise RuntimeUnavailable(f"{type(model).__name__} does not run on ONNX Runtime ({detail})") from exc


def fast(checkpoint: Checkpoint, runtime: str = "onnx", threads: int = 1) -> Checkpoint:
    """``checkpoint`` with its classifier on the fastest runtime that reproduces torch's output.

    Args:
        checkpoint: a loaded checkpoint (not modified).
        runtime: ``"onnx"`` (ONNX Runtime, falling back to torch when the network does not export)
            or ``"torch"`` (the reference path: the checkpoint itself).
        threads: ONNX Runtime intra-op threads.

    Returns:
        A :class:`Checkpoint` sharing the card and path, whose ``model`` is an :class:`OnnxModule`,
        or ``checkpoint`` itself on the torch path or after a fallback.

    Raises:
        ValueError: an unknown runtime.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime == "torch" or isinstance(checkpoint.model, OnnxModule):
        return checkpoint
    if isinstance(checkpoint.model, ScatterNet):  # kymatio's complex FFTs have no ONNX export: torch path
        return checkpoint
    try:
        module = OnnxModule(onnx_session(checkpoint.model, threads))
        probe = torch.from_numpy(np.random.default_rng(0).normal(0, 1, (8, 1, 48, 48)).astype(np.float32))
        with torch.no_grad():
            want = torch.softmax(checkpoint.model(probe), 1)
            got = torch.softmax(module(probe), 1)
        if float((want - got).abs().max()) > PROBABILITY_TOLERANCE:
            raise RuntimeUnavailable(f"ONNX Runtime differs from torch by {float((want - got).abs().max()):.2g}")
    except RuntimeUnavailable as exc:
        warnings.warn(f"{checkpoint.name}: {exc}; using torch", stacklevel=2)
        return checkpoint
    return Checkpoint(model=module, card=checkpoint.card, path=checkpoint.path)
