"""Knowledge distillation: a student learns from a teacher's softened outputs (Hinton et al. 2015).

Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network": the student minimises

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, label)

(the T^2 keeps the soft term's gradients on the scale of the hard one as T changes). The teacher sees
*the same augmented batch* as the student ("consistent teaching", Beyer et al. 2022, "Knowledge
distillation: A good teacher is patient and consistent"), so every augmentation yields a fresh target.
An ensemble teacher averages its members' softened probabilities; ``teacher_flip`` also averages each
member over the mirror image (test-time augmentation inside the teacher).

A teacher several times the student's size costs most of each step. With ``kd_views = V > 0`` the teacher's
outputs are computed once, FKD-style (Shen & Xing 2022, "A Fast Knowledge Distillation Framework for Visual
Recognition"): V augmented views of every training face are drawn from seeds, the teacher's softened
probabilities on each are stored (``teacher_views.pt`` in the run folder, ``float32 (V, N, K)``, resumable
view by view), and epoch ``e`` trains on view ``e mod V``, regenerated from its seed - the teacher still
saw exactly the image the student sees (consistent), only the views repeat.

The plain strategy plugs a :class:`Teacher` into its epoch step when ``TrainConfig.teacher`` is set;
private runs refuse a teacher (its outputs on the private rows would escape the accountant).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from fer_core.data.augment import augment_batch
from fer_core.data.preprocess import to_model_input
from fer_core.models.checkpoint import WEIGHTS_FILE, Checkpoint, load_checkpoint, repo_relative
from fer_core.training.config import TrainConfig
from fer_core.training.state import atomic_torch_save

VIEWS_FILE = "teacher_views.pt"

#: The source of the method, recorded in the card's ``distillation`` block.
METHOD = ("knowledge distillation (Hinton et al. 2015): alpha * T^2 * KL(teacher_T || student_T) + "
          "(1 - alpha) * cross-entropy; teacher on the same augmented batch (Beyer et al. 2022)")


class DistillationError(ValueError):
    """A teacher that cannot teach this run (missing, other classes); the message says which and why."""


def teacher_paths(cfg: TrainConfig) -> list[str]:
    """The teacher checkpoint folders of ``cfg.teacher`` (comma-separated), in order; empty without one."""
    return [p.strip() for p in (cfg.teacher or "").split(",") if p.strip()]


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Hinton et al.'s distillation loss of one batch (a scalar, mean over the batch).

    Args:
        student_logits: ``float32 (B, K)``.
        teacher_probs: ``float32 (B, K)``, the teacher's ``softmax(logits / temperature)`` (rows sum to 1).
        labels: ``int64 (B,)`` class ids, or ``float32 (B, K)`` label distributions.
        temperature: T > 0 of both softmaxes; alpha: weight of the soft term, in [0, 1].
        label_smoothing: of the hard term.

    Raises:
        ValueError: temperature <= 0 or alpha outside [0, 1].
    """
    if temperature <= 0 or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"need temperature > 0 and alpha in [0, 1], got T={temperature}, alpha={alpha}")
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1), teacher_probs,
                    reduction="batchmean") * temperature**2
    if alpha == 1.0:
        return soft
    hard = F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    return alpha * soft + (1.0 - alpha) * hard


class Teacher:
    """One or more trained checkpoints whose averaged, softened probabilities a student learns from.

    Args:
        checkpoints: the teachers (loaded; put in eval mode, never updated).
        student_mean, student_std: the student's preprocessing (``(x / 255 - mean) / std``); a teacher
            with other constants gets its inputs re-normalised.
        flip: also average each teacher over the mirror image.
        device: where the teachers run.
    """

    def __init__(self, checkpoints: list[Checkpoint], student_mean: float, student_std: float, flip: bool = False,
                 device: torch.device | str = "cpu") -> None:
        if not checkpoints:
            raise DistillationError("a teacher needs at least one checkpoint")
        self.checkpoints = checkpoints
        self.flip = flip
        self.student = (student_mean, student_std)
        self.models = [ck.model.to(device).eval() for ck in checkpoints]
        for m in self.models:
            for p in m.parameters():
                p.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg: TrainConfig, classes: list[str], student_mean: float, student_std: float,
                    device: torch.device | str = "cpu") -> Teacher:
        """The teacher(s) of ``cfg.teacher``, checked against the student's ``classes``.

        Raises:
            DistillationError: no teacher given, a teacher that does not load, or one with other classes.
        """
        paths = teacher_paths(cfg)
        if not paths:
            raise DistillationError("--teacher names no checkpoint")
        loaded = []
        for p in paths:
            try:
                ck = load_checkpoint(p)
            except (OSError, ValueError) as exc:
                raise DistillationError(f"teacher {p}: {exc}") from exc
            if list(ck.classes) != list(classes):
                raise DistillationError(f"teacher {p} predicts {ck.classes}; this run's classes are {classes} "
                                        "(a teacher must share the student's label set)")
            loaded.append(ck)
        return cls(loaded, student_mean, student_std, flip=cfg.teacher_flip, device=device)

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, temperature: float) -> torch.Tensor:
        """Averaged ``softmax(logits / temperature)`` of the teachers on the student's input batch.

        Args:
            x: ``float32 (B, 1, 48, 48)``, normalised with the student's preprocessing (augmented).

        Returns:
            ``float32 (B, K)``, rows summing to 1.
        """
        mean_s, std_s = self.student
        total = None
        n = 0
        for ck, model in zip(self.checkpoints, self.models, strict=True):
            pre = ck.card.preprocessing
            xt = x if (pre.mean, pre.std) == (mean_s, std_s) else ((x * std_s + mean_s) - pre.mean) / pre.std
            views = [xt, torch.flip(xt, dims=[3])] if self.flip else [xt]
            for v in views:
                p = torch.softmax(model(v).float() / temperature, dim=1)  # (B, K)
                total = p if total is None else total + p
                n += 1
        return total / n

    def describe(self, cfg: TrainConfig) -> dict:
        """The card's ``distillation`` block: each teacher's provenance and scores, T, alpha, flip, method."""
        teachers = []
        for ck in self.checkpoints:
            weights = Path(ck.path) / WEIGHTS_FILE
            teachers.append({
                "name": ck.name,
                "path": repo_relative(ck.path),
                "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else None,
                "arch": ck.card.arch,
                "macs": ck.card.get("macs"),
                "private": ck.card.is_private,
                "publictest_accuracy": ck.card.metrics("PublicTest").get("accuracy"),
                "privatetest_accuracy": ck.card.metrics("PrivateTest").get("accuracy"),
            })
        return {"teachers": teachers, "temperature": cfg.kd_temperature, "alpha": cfg.kd_alpha,
                "teacher_flip": cfg.teacher_flip, "views": cfg.kd_views, "method": METHOD}


def view_seed(cfg: TrainConfig, view: int) -> int:
    """The seed of augmented view ``view`` (0-based) of the training faces; distinct from every epoch seed."""
    return cfg.seed * 100_003 + 50_000 + view


def augmented_view(images: torch.Tensor, cfg: TrainConfig, view: int, chunk: int = 2048) -> torch.Tensor:
    """View ``view`` of every training face: augmented in row order, in fixed chunks, from :func:`view_seed`.

    The same (faces, config, view) always give the same tensor, so a view is regenerated instead of stored.

    Args:
        images: ``uint8 (N, 48, 48)`` training faces.

    Returns:
        ``float32 (N, 1, 48, 48)`` normalised, augmented faces (not augmented when ``cfg.augment`` is empty).
    """
    g = torch.Generator().manual_seed(view_seed(cfg, view))
    parts = []
    for i in range(0, len(images), chunk):
        x = to_model_input(images[i: i + chunk])  # (b, 1, 48, 48)
        parts.append(augment_batch(x, cfg.augment_config, g) if cfg.augment else x)
    return torch.cat(parts)


class TeacherViews:
    """The teacher's softened probabilities on ``cfg.kd_views`` fixed augmented views of the training faces.

    Computed once (or continued after an interruption) into ``<out>/teacher_views.pt``:
    ``{"probs": float32 (V, N, K), "done": views finished, "key": what they depend on}``.

    Args:
        teacher: the teacher. images: ``uint8 (N, 48, 48)`` training faces. out: the run folder.
        batch_size: faces per teacher forward pass.
    """

    def __init__(self, teacher: Teacher, images: torch.Tensor, cfg: TrainConfig, out: Path | None,
                 batch_size: int = 512, progress: bool = True) -> None:
        self.cfg, self.images = cfg, images
        views, n = cfg.kd_views, len(images)
        key = {"teachers": [d["weights_sha256"] for d in teacher.describe(cfg)["teachers"]],
               "temperature": cfg.kd_temperature, "flip": cfg.teacher_flip, "views": views, "rows": n,
               "seed": cfg.seed, "augment": cfg.augment}
        path = Path(out) / VIEWS_FILE if out is not None else None
        state = torch.load(path, weights_only=True) if path is not None and path.is_file() else None
        if state is None or state["key"] != key:
            state = {"probs": torch.zeros(views, n, len(teacher.checkpoints[0].classes)), "done": 0, "key": key}
        bar = tqdm(range(int(state["done"]), views), desc="teacher views", disable=not progress, file=sys.stderr)
        for v in bar:
            x = augmented_view(images, cfg, v)
            state["probs"][v] = torch.cat([teacher.probabilities(x[i: i + batch_size], cfg.kd_temperature)
                                           for i in range(0, n, batch_size)])
            state["done"] = v + 1
            if path is not None:
                atomic_torch_save(state, path)
        self.probs = state["probs"]  # (V, N, K)

    def epoch(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Epoch ``epoch``'s inputs and targets: view ``epoch mod V`` (``float32 (N, 1, 48, 48)``) and the
        teacher's probabilities on it (``float32 (N, K)``)."""
        v = epoch % self.cfg.kd_views
        return augmented_view(self.images, self.cfg, v), self.probs[v]
