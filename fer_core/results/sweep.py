"""The privacy/accuracy sweep: each private training method at each target epsilon, one CSV.

``python -m fer_core sweep`` trains every (method, epsilon) pair with that method's recipe
(:data:`RECIPES`, delta = 1e-5), chooses each run's weights on ``PublicTest``, evaluates
``PrivateTest`` once, and writes ``checkpoints/results/sweep.csv`` (one row per finished run,
rewritten after each so an interrupted sweep keeps what it has). Every run has its own resumable
folder under ``runs/sweep``; a finished one is read back, not retrained. The best run per epsilon
of each privacy class (:data:`PRIVACY_CLASSES`: fully private, ``dp-sgd``/``scatternet``; on public data,
``two-stage``/``public-features``) is exported to ``checkpoints/dp_<method>_eps<epsilon>`` for the app.

The two-stage method needs its stage-1 model (an ordinary run on the declared public share);
the sweep trains it once (``checkpoints/fer2013_public_resnet``) if it is missing.

``sweep --reference`` trains each method's *non-private reference* instead (:func:`run_references`): the same
recipe, model, rows and features with ``noise_multiplier`` 0 and no clipping, its learning rate chosen on
``PublicTest`` from :data:`REFERENCE_LRS`; one row per method in ``checkpoints/results/reference.csv``, the
yardstick of what privacy costs each method (the Privacy page draws it beside the method's curve).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from fer_core import EMOTIONS
from fer_core.models.architectures import build_model
from fer_core.models.checkpoint import (
    CARD_FILE,
    CHECKPOINT_DIR,
    WEIGHTS_FILE,
    repo_relative,
    save_checkpoint,
    stored_state,
)
from fer_core.privacy.accounting import DELTA, DP_METHODS, PUBLIC_BACKBONE_METHODS, PrivacyError
from fer_core.results.files import (
    REFERENCE_RESULTS,
    SWEEP_RESULTS,
    finite_or_none,
    read_reference,
    read_sweep,
    write_reference,
    write_sweep,
)
from fer_core.training.card import FINAL_CARD_FILE
from fer_core.training.lifecycle import main
from fer_core.training.state import finished_card
from fer_core.training.validation import BEST_FILE

EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0)
STAGE1 = CHECKPOINT_DIR / "fer2013_public_resnet"
PUBLIC_FRACTION = 0.2
FULLY_PRIVATE = ("dp-sgd", "scatternet")
#: What the shipped models are grouped by (one checkpoint per class and epsilon): whether a method stands on public
#: data (two-stage: a declared public share of Training; public-features: public pretrained backbones) or on none.
PRIVACY_CLASSES: dict[str, str] = {**{m: "fully private" for m in FULLY_PRIVATE},
                                   **{m: "public data" for m in ("two-stage", *PUBLIC_BACKBONE_METHODS)}}

# Per-method recipes (TrainConfig fields). DP-SGD wants large batches, few epochs, no weight decay
# and a learning rate scaled to the clipping bound (Tramer & Boneh 2021; De et al. 2022).
RECIPES: dict[str, dict] = {
    "scatternet": dict(arch="scatternet", model_args={"width": 64, "input_norm": "publictest", "mirror_views": True,
                                                      "augmentation_multiplicity": 2},
                       epochs=24, batch_size=2048, lr=4.0, momentum=0.9, max_grad_norm=0.1, weight_decay=0.0,
                       label_smoothing=0.0, warmup_epochs=0.0, ema_decay=0.97, augment={}, trainable="all",
                       physical_batch_size=512),
    "two-stage": dict(arch="resnet", model_args={}, epochs=10, batch_size=1024, lr=0.5, momentum=0.9,
                      max_grad_norm=1.0, weight_decay=0.0, label_smoothing=0.0, warmup_epochs=0.0,
                      ema_decay=0.9, augment={}, trainable="head", physical_batch_size=512,
                      public_fraction=PUBLIC_FRACTION),
    "dp-sgd": dict(arch="resnet", model_args={"widths": [16, 32, 64, 128], "blocks": [1, 1, 1, 1], "stem": 16},
                   epochs=10, batch_size=1024, lr=0.5, momentum=0.9, max_grad_norm=1.0, weight_decay=0.0,
                   label_smoothing=0.0, warmup_epochs=0.0, ema_decay=0.9, augment={"flip": 0.5, "rotation_deg": 0,
                   "scale": 0, "shift": 0, "brightness": 0, "contrast": 0, "erase_p": 0},
                   trainable="all", physical_batch_size=256),
}
# A DP linear head on frozen public features (facex's MobileNetV2 blocks 13 + 16, concatenated with SFace's
# face-identity trunk at conv_13 pooled 2x2: 4,992-d; every Training row private), tuned on PublicTest: large
# batches, 30 epochs; below epsilon = 2 a larger batch and a smaller step (the noise per step grows). Mirror views
# with augmentation multiplicity 2 (De et al. 2022): the features of each face and of its mirror image are cached,
# the head trains on the mean of its logits on both (one clipped gradient per face) and predicts the same mean. At
# epsilon = 8 this raised PublicTest from 0.6119 (one view: the row of sweep.csv at commit b4ff54d, which this
# recipe's run replaced) to 0.6252 (sweep.csv), so it was chosen on PublicTest; inference runs both backbones twice
# per face.
RECIPES["public-features"] = dict(arch="facex", model_args={"sface_features": ["conv_13"], "mirror_views": True,
                                                           "augmentation_multiplicity": 2}, epochs=30,
                                  batch_size=4096, lr=0.5, momentum=0.9, max_grad_norm=1.0, weight_decay=0.0,
                                  label_smoothing=0.0, warmup_epochs=0.0, ema_decay=0.9, augment={},
                                  trainable="head", physical_batch_size=4096)
# The same features (one view per face: fine-tuned blocks do not combine with mirror views yet), and DP-SGD also
# fine-tunes the biases of the model's own copy of facex's block 16 (BitFit, Bu et al. 2022: 2,240 more trainable
# values, against ~470k for the block's weights) on the cached output of block 15.
# Run logs here (2 threads, not a result file): ~120 s per epoch with block 16, ~360 s with blocks 14-16 (the blocks'
# forward and backward on 28,709 faces, not Opacus, is most of it), against seconds for the head alone.
RECIPES["public-finetune"] = {**RECIPES["public-features"], "trainable": "last-block", "physical_batch_size": 512,
                              "model_args": {"sface_features": ["conv_13"], "finetune_blocks": 1,
                                             "finetune_params": "bias"}}
#: Per-epsilon changes to a method's recipe (also chosen on PublicTest).
EPSILON_RECIPES: dict[str, dict[float, dict]] = {
    "public-features": {eps: dict(batch_size=8192, lr=0.25, physical_batch_size=8192) for eps in (0.5, 1.0)},
    "public-finetune": {eps: dict(batch_size=8192, lr=0.25) for eps in (0.5, 1.0)},
}
#: What a method's non-private reference changes in its recipe (same epochs) besides noise and clipping: the smaller
#: batches non-private SGD wants, with an EMA over more of its steps; the learning rate is chosen on PublicTest
#: from :data:`REFERENCE_LRS`.
REFERENCE_RECIPE = dict(batch_size=256, physical_batch_size=256, ema_decay=0.99)
REFERENCE_LRS: dict[str, tuple[float, ...]] = {
    "public-features": (0.001, 0.003, 0.01), "public-finetune": (0.001, 0.003, 0.01), "scatternet": (0.02, 0.05),
    "two-stage": (0.01, 0.05),
    "dp-sgd": (0.02, 0.05),
}
# Stage 1 of two-stage: the ordinary recipe on the public share only.
STAGE1_RECIPE = dict(arch="resnet", model_args={}, epochs=30, batch_size=128, lr=0.05, train_rows="public",
                     public_fraction=PUBLIC_FRACTION, compile=True, channels_last=True)


def _eps_tag(epsilon: float) -> str:
    return f"{epsilon:g}".replace(".", "p")


def run_name(method: str, epsilon: float) -> str:
    """Folder/checkpoint name of one sweep run, e.g. ``dp_scatternet_eps0p5``."""
    return f"dp_{method}_eps{_eps_tag(epsilon)}"


def _result_cells(card: dict) -> dict:
    """The accuracy, per-class recall and training-time cells a ``sweep.csv`` or ``reference.csv`` row takes from
    a finished run's card."""
    pub, priv = card["metrics"]["PublicTest"], card["metrics"].get("PrivateTest", {})
    recall = {c: v["recall"] for c, v in priv.get("per_class", {}).items()}
    return {
        "publictest_accuracy": round(pub["accuracy"], 4),
        "privatetest_accuracy": round(priv.get("accuracy", float("nan")), 4),
        "privatetest_macro_f1": round(priv.get("macro_f1", float("nan")), 4),
        **{f"recall_{e}": round(recall.get(e, float("nan")), 4) for e in EMOTIONS},
        "train_seconds": round(sum(h["seconds"] for h in card["history"]), 1),
    }


def _trained_by(card: dict, command: str) -> str:
    """The command that trained a run (its card's), or ``command`` for a card that names none."""
    return card.get("command") or command


def sweep_row(card: dict, run: str, command: str) -> dict:
    """One ``sweep.csv`` row from a finished run's model card; its ``command`` is the one that trained the run (the
    card's), ``command`` only for a card that names none (a run read back is not credited to the command reading
    it)."""
    p = card["privacy"]
    return {
        "method": p["method"], "epsilon": p["epsilon"], "target_epsilon": p["target_epsilon"],
        "delta": p["delta"], "accountant": p["accountant"], "noise_multiplier": round(p["noise_multiplier"], 4),
        "max_grad_norm": p["max_grad_norm"], "batch_size": p["expected_batch_size"],
        "sample_rate": round(p["sample_rate"], 6), "epochs": p["epochs"], "steps": p["steps"],
        "trainable": p["trainable"], "private_rows": p["private_rows"], "public_rows": p["public_rows"],
        **_result_cells(card), "run": run, "checkpoint": "", "command": _trained_by(card, command),
    }



def ensure_stage1(base, stage1: Path = STAGE1, command: str = "", out_root: Path = Path("runs/sweep")) -> Path:
    """The two-stage method's stage-1 checkpoint; trained on the public share if missing."""
    if (Path(stage1) / "model.json").exists():
        return Path(stage1)
    cfg = dataclasses.replace(base, **STAGE1_RECIPE, out=str(out_root / Path(stage1).name), export=str(stage1),
                              name=Path(stage1).name, dp_method=None, epsilon=None)
    res = main(cfg, command=command)
    if not res["finished"]:
        raise RuntimeError(f"stage 1 ({stage1}) stopped before its last epoch; run the sweep again to resume")
    return Path(stage1)


def run_sweep(
    base,
    methods=("scatternet", "two-stage"),
    epsilons=EPSILONS,
    results_path: Path = SWEEP_RESULTS,
    out_root: Path = Path("runs/sweep"),
    export_dir: Path | None = CHECKPOINT_DIR,
    overrides: dict | None = None,
    command: str = "",
    stage1: Path = STAGE1,
) -> list[dict]:
    """Train each method at each target epsilon; write ``sweep.csv``; export the best per epsilon.

    Args:
        base: a :class:`fer_core.training.config.TrainConfig` holding the data, threads, device and seed;
            the method's recipe (:data:`RECIPES`) and ``overrides`` (e.g. ``{"epochs": 5}``)
            are applied on top.
        methods: names from :data:`fer_core.privacy.accounting.DP_METHODS`. epsilons: target epsilons (delta 1e-5).
        results_path: the CSV to (re)write; rows of earlier runs of other (method, epsilon) pairs
            are kept.
        export_dir: where the best checkpoint per epsilon and privacy class goes (None: no export).

    Returns:
        All rows now in the CSV.

    Raises:
        fer_core.privacy.accounting.PrivacyError: an unknown method or an unreachable epsilon.
    """
    unknown = [m for m in methods if m not in DP_METHODS]
    if unknown:
        raise PrivacyError(f"unknown method(s) {unknown}; choose from {', '.join(DP_METHODS)}")
    rows = {(r["method"], float(r["target_epsilon"])): r for r in read_sweep(results_path)}
    for method in methods:
        init_from = repo_relative(ensure_stage1(base, stage1, command, out_root)) if method == "two-stage" else None
        for eps in epsilons:
            name = run_name(method, eps)
            recipe = {**RECIPES[method], **EPSILON_RECIPES.get(method, {}).get(float(eps), {})}
            cfg = dataclasses.replace(base, **{**recipe, **(overrides or {})}, dp_method=method,
                                      epsilon=float(eps), delta=DELTA, noise_multiplier=None,
                                      out=str(out_root / name), export=None, name=name, init_from=init_from)
            t0 = time.perf_counter()
            card = _train_or_read(cfg, command)
            if card is None:
                continue
            row = sweep_row(card, name, command)
            rows[(method, float(eps))] = row
            write_sweep(list(rows.values()), results_path)
            print(f"{name}: PrivateTest {row['privatetest_accuracy']:.4f} at epsilon {row['epsilon']:.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    if export_dir is not None:
        export_best(list(rows.values()), Path(out_root), Path(export_dir))
        write_sweep(list(rows.values()), results_path)
    return list(rows.values())


def _train_or_read(cfg, command: str) -> dict | None:
    """The final card of the run ``cfg`` describes: read back when finished, else trained (resumed); None when
    the run stopped before its last epoch."""
    card = finished_card(cfg)
    if card is None:
        if not main(cfg, command=command)["finished"]:
            return None
        card = json.loads((Path(cfg.out) / FINAL_CARD_FILE).read_text())
    return card


def reference_name(method: str, lr: float) -> str:
    """Folder name of one non-private reference run, e.g. ``ref_scatternet_lr0p03``."""
    return f"ref_{method}_lr{_eps_tag(lr)}"


def reference_row(card: dict, run: str, command: str) -> dict:
    """One ``reference.csv`` row from a finished reference run's model card (``command`` as in :func:`sweep_row`)."""
    p, cfg = card["privacy"], card["config"]
    return {
        "method": p["method"], "arch": card["arch"], "trainable": p["trainable"],
        "noise_multiplier": p["noise_multiplier"], "max_grad_norm": "none" if p["max_grad_norm"] is None
        else p["max_grad_norm"], "batch_size": cfg["batch_size"], "lr": cfg["lr"], "epochs": p["epochs"],
        "train_rows": p["private_rows"], **_result_cells(card), "run": run, "command": _trained_by(card, command),
    }


def run_references(
    base,
    methods=("public-features", "scatternet", "two-stage"),
    results_path: Path = REFERENCE_RESULTS,
    out_root: Path = Path("runs/sweep"),
    overrides: dict | None = None,
    command: str = "",
    stage1: Path = STAGE1,
    lrs: dict[str, tuple[float, ...]] | None = None,
) -> list[dict]:
    """Train each method's non-private reference; keep the one chosen on PublicTest; write ``reference.csv``.

    A reference is the method's recipe (:data:`RECIPES`, then :data:`REFERENCE_RECIPE`) run through the same
    private lifecycle with ``noise_multiplier`` 0 and ``max_grad_norm`` ``inf`` (plain SGD: nothing clipped, no
    noise; its card is not private), once per learning rate of :data:`REFERENCE_LRS`; the run with the best
    PublicTest accuracy is the method's row. Resumable like :func:`run_sweep` (finished runs are read back).

    Args:
        base: a :class:`fer_core.training.config.TrainConfig` with the data, threads and seed.
        methods: names from :data:`fer_core.privacy.accounting.DP_METHODS`.
        results_path: the CSV to (re)write; rows of other methods are kept.
        overrides: TrainConfig fields applied last (e.g. ``{"epochs": 1}``).
        lrs: ``{method: learning rates}`` instead of :data:`REFERENCE_LRS`.

    Returns:
        All rows now in the CSV (dicts with :data:`fer_core.results.files.REFERENCE_COLUMNS`).

    Raises:
        fer_core.privacy.accounting.PrivacyError: an unknown method.
    """
    unknown = [m for m in methods if m not in DP_METHODS]
    if unknown:
        raise PrivacyError(f"unknown method(s) {unknown}; choose from {', '.join(DP_METHODS)}")
    rows = {r["method"]: r for r in read_reference(results_path)}
    for method in methods:
        init_from = repo_relative(ensure_stage1(base, stage1, command, out_root)) if method == "two-stage" else None
        tried = []
        for lr in (lrs or REFERENCE_LRS)[method]:
            name = reference_name(method, lr)
            recipe = {**RECIPES[method], **REFERENCE_RECIPE, **(overrides or {}), "lr": float(lr),
                      "noise_multiplier": 0.0, "max_grad_norm": math.inf}
            cfg = dataclasses.replace(base, **recipe, dp_method=method, epsilon=None, delta=DELTA,
                                      out=str(out_root / name), export=None, name=name, init_from=init_from)
            card = _train_or_read(cfg, command)
            if card is not None:
                tried.append(reference_row(card, name, command))
                print(f"{name}: PublicTest {tried[-1]['publictest_accuracy']:.4f}", flush=True)
        if tried:
            rows[method] = max(tried, key=lambda r: float(r["publictest_accuracy"]))
            write_reference(list(rows.values()), results_path)
    return list(rows.values())


def export_best(rows: list[dict], out_root: Path, export_dir: Path) -> list[str]:
    """Copy the best run (by PublicTest accuracy) per target epsilon and privacy class into checkpoints.

    The checkpoint is the run's chosen weights (:data:`~fer_core.training.validation.BEST_FILE`) with its final
    card (what ``main`` exports). Classes: :data:`PRIVACY_CLASSES` (a method not listed is a class of its own).
    Marks the chosen rows' ``checkpoint`` column and clears it on the others of their group; a checkpoint one of
    those others was shipped in before (a folder of ``export_dir`` named after its run, holding a model card) is no
    longer the class's model and is removed (its rows in the result files stay, as measurements of its recipe). A
    chosen run whose folder is gone keeps its mark when its checkpoint is in ``export_dir``. A checkpoint already
    exported from the same run (same card, same weights) is left as it is, so the audit blocks added to its card
    since survive. Returns the chosen folder names.
    """
    written = []
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((PRIVACY_CLASSES.get(r["method"], r["method"]), float(r["target_epsilon"])), []).append(r)
    for group in groups.values():
        best = max(group, key=lambda r: float(r["publictest_accuracy"]))
        for r in group:
            r["checkpoint"] = ""
            superseded = export_dir / r["run"]
            if r["run"] != best["run"] and (superseded / CARD_FILE).is_file():
                shutil.rmtree(superseded)
        run = out_root / best["run"]
        card_path = run / FINAL_CARD_FILE
        if not card_path.exists():
            if (export_dir / best["run"] / CARD_FILE).is_file():
                best["checkpoint"] = best["run"]
                written.append(best["run"])
            continue
        card = json.loads(card_path.read_text())
        model = build_model(card["arch"], **card["model_args"])
        model.load_state_dict(load_file(str(run / BEST_FILE)))
        dest = export_dir / best["run"]
        best["checkpoint"] = best["run"]
        written.append(best["run"])
        if _already_exported(dest, card, model):  # its card keeps what audits have added to it since
            continue
        if dest.exists():
            shutil.rmtree(dest)
        save_checkpoint(dest, model, card)
    return written


def _already_exported(dest: Path, card: dict, model) -> bool:
    """Whether ``dest`` holds this run's checkpoint already: the same card (``created``) and the same weights."""
    if not (dest / CARD_FILE).is_file() or not (dest / WEIGHTS_FILE).is_file():
        return False
    try:
        if json.loads((dest / CARD_FILE).read_text()).get("created") != card.get("created"):
            return False
        shipped = load_file(str(dest / WEIGHTS_FILE))
    except (OSError, ValueError):
        return False
    mine = stored_state(model)
    return shipped.keys() == mine.keys() and all(torch.equal(shipped[k], mine[k]) for k in mine)


def expected_accuracy(rows: list[dict], method: str, epsilon: float) -> float | None:
    """PrivateTest accuracy to expect from ``method`` trained to spend ``epsilon``, from the sweep.

    Linear interpolation in ``log(epsilon)`` between the measured points of that method (the achieved
    ``epsilon`` column against ``privatetest_accuracy``; points at the same epsilon are averaged).

    Args:
        rows: :func:`fer_core.results.files.sweep_rows` / :func:`fer_core.results.files.read_sweep` rows.
        method: ``dp-sgd``, ``scatternet`` or ``two-stage`` (the ``method`` column).
        epsilon: > 0.

    Returns:
        Accuracy in [0, 1], or None when ``epsilon`` lies outside the measured range, is not > 0,
        or the method has no usable rows.
    """
    eps = finite_or_none(epsilon)
    if eps is None or eps <= 0:
        return None
    points: dict[float, list[float]] = {}
    for r in rows:
        if r.get("method") != method:
            continue
        e, acc = finite_or_none(r.get("epsilon")), finite_or_none(r.get("privatetest_accuracy"))
        if e is not None and e > 0 and acc is not None:
            points.setdefault(e, []).append(acc)
    if not points:
        return None
    xs = sorted(points)
    ys = [sum(points[x]) / len(points[x]) for x in xs]
    if eps < xs[0] * (1 - 1e-9) or eps > xs[-1] * (1 + 1e-9):
        return None
    if len(xs) == 1:
        return ys[0]
    return float(np.interp(math.log(eps), [math.log(x) for x in xs], ys))
