"""Self-describing checkpoints: weights in safetensors plus a JSON model card beside them.

A checkpoint is a folder ``checkpoints/<name>/`` holding

* ``model.safetensors`` - the unwrapped module's ``state_dict`` (never a pickle; loading cannot run
  code), less the frozen public backbones it loads from ``checkpoints/public/`` (the card's
  ``shared_weights`` names each one's folder and the sha256 of its tensors, checked on loading: a
  public backbone is stored once, not in every model that stands on it), and
* ``model.json`` - the model card: ``arch`` and ``model_args`` (enough to rebuild the module),
  ``classes``, ``preprocessing``, the frozen training ``config``, ``data`` (file, sha256, split
  sizes), ``metrics`` (PublicTest, PrivateTest, dedup PrivateTest, per class), ``privacy``
  (``{"private": false}`` or the DP block), ``history`` (per-epoch curves), ``command``,
  ``wall_time_s`` and ``hardware``.

Inspired by nanoGPT's and torchvision's checkpoints that carry their own model arguments.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fer_core import LABEL_SETS
from fer_core.data.preprocess import MEAN, STD, preprocessing_spec
from fer_core.models.architectures import build_model
from fer_core.models.paths import CHECKPOINTS_ENV as CHECKPOINTS_ENV  # re-exported
from fer_core.models.paths import checkpoint_dir

CHECKPOINT_DIR = checkpoint_dir()
DEFAULT_CHECKPOINT = "fer2013_resnet"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
CARD_VERSION = 1


#: Keys a model card must hold; :func:`read_card` refuses a card without them.
REQUIRED_KEYS = ("arch", "model_args", "classes")
#: ``label_set`` of a hand-made card whose classes are none of :data:`fer_core.LABEL_SETS`.
CUSTOM_LABEL_SET = "custom"
NOT_PRIVATE = {"private": False, "epsilon": None, "delta": None, "note": "trained without differential privacy"}


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or corrupt; the message says which file and why."""


@dataclass(frozen=True)
class Preprocessing:
    """How a card's model turns a ``uint8`` grey face into its input: ``(x / 255 - mean) / std``."""

    mean: float
    std: float
    image_size: tuple[int, int] = (48, 48)


class ModelCard(dict):
    """A model card (``model.json``) as read from disk: the JSON dict plus typed accessors.

    :meth:`from_json` checks :data:`REQUIRED_KEYS` and fills what a hand-made card may omit, once:
    ``label_set`` (the label set whose class names the card lists), ``preprocessing`` (the training
    preprocessing, :func:`fer_core.data.preprocess.preprocessing_spec`) and ``privacy`` (not
    private). Readers use :attr:`label_set`, :attr:`preprocessing` and :attr:`privacy` and never
    guess. It stays a ``dict`` (JSON round trip, ``card["metrics"]``) for everything else.
    """

    @classmethod
    def from_json(cls, card: dict, where: str = "model card") -> ModelCard:
        """A validated card from parsed JSON.

        Raises:
            CheckpointError: not a JSON object, or a required key missing.
        """
        if not isinstance(card, dict):
            raise CheckpointError(f"{where} is not a JSON object: not a fer_core model card")
        missing = [k for k in REQUIRED_KEYS if k not in card]
        if missing:
            raise CheckpointError(f"{where} lacks {', '.join(map(repr, missing))}: not a fer_core model card "
                                  f"(a card holds at least {', '.join(REQUIRED_KEYS)})")
        out = cls(card)
        if "label_set" not in out:
            match = [name for name, classes in LABEL_SETS.items() if list(classes) == list(card["classes"])]
            out["label_set"] = match[0] if match else CUSTOM_LABEL_SET
        out.setdefault("preprocessing", preprocessing_spec(MEAN, STD))
        out.setdefault("privacy", dict(NOT_PRIVATE))
        return out

    @property
    def name(self) -> str:
        """The model's name (the card's ``name``; the checkpoint folder's name when absent)."""
        return str(self.get("name") or "?")

    @property
    def arch(self) -> str:
        return str(self["arch"])

    @property
    def classes(self) -> list[str]:
        """Class names, index = class id (7 for FER2013, 8 for FER+)."""
        return list(self["classes"])

    @property
    def label_set(self) -> str:
        """``"fer2013"`` or ``"ferplus"`` (:data:`fer_core.LABEL_SETS`)."""
        return str(self["label_set"])

    @property
    def preprocessing(self) -> Preprocessing:
        pre = self["preprocessing"]
        return Preprocessing(mean=float(pre["mean"]), std=float(pre["std"]),
                             image_size=tuple(pre.get("image_size", (48, 48))))

    @property
    def privacy(self) -> dict:
        """The privacy block: ``{"private": False, ...}`` or the DP block (epsilon, delta, accountant, ...)."""
        return dict(self["privacy"])

    @property
    def is_private(self) -> bool:
        return bool(self["privacy"].get("private"))

    @property
    def epsilon(self) -> float | None:
        """Epsilon spent (accountant's figure) of a private model; None for a non-private one."""
        return float(self["privacy"]["epsilon"]) if self.is_private else None

    @property
    def delta(self) -> float | None:
        return float(self["privacy"]["delta"]) if self.is_private else None

    def metrics(self, split: str) -> dict:
        """The card's evaluation report for ``split`` (e.g. ``"PrivateTest"``), or ``{}``."""
        return dict(self.get("metrics", {}).get(split, {}))

    @property
    def history(self) -> list[dict]:
        """Per-epoch training rows (``epoch``, ``train_accuracy``, ``val_accuracy``, ...), or []."""
        return list(self.get("history") or [])


@dataclass
class Checkpoint:
    """A loaded checkpoint: the module in eval mode and its model card."""

    model: torch.nn.Module
    card: ModelCard
    path: Path

    @property
    def name(self) -> str:
        return self.card.get("name") or self.path.name

    @property
    def classes(self) -> list[str]:
        return self.card.classes


def repo_relative(path: str | os.PathLike | None) -> str | None:
    """``path`` as a card records it: relative to the repository when it lies inside it (e.g.
    ``checkpoints/fer2013_public_resnet``), else as given; None stays None."""
    if path is None:
        return None
    p = resolve(path)
    try:
        return p.resolve().relative_to(CHECKPOINT_DIR.parent).as_posix()
    except ValueError:
        return str(path)


def resolve(path: str | os.PathLike | None = None) -> Path:
    """The folder of a checkpoint given as a folder, a file inside it, or a bare name in ``checkpoints/``.

    ``None`` gives the shipped default (:data:`DEFAULT_CHECKPOINT`).
    """
    if path is None:
        return CHECKPOINT_DIR / DEFAULT_CHECKPOINT
    p = Path(path).expanduser()
    if p.is_file():
        return p.parent
    if not p.exists() and not p.is_absolute() and (CHECKPOINT_DIR / p).exists():
        return CHECKPOINT_DIR / p
    return p


def shared_weights(model: torch.nn.Module) -> dict[str, dict]:
    """``{state_dict prefix: {"folder", "tensor_sha256"}}`` of the frozen public backbones ``model`` loads from
    their own folders (:meth:`fer_core.models.facex.FaceXNet.shared_weights`); {} for any other model."""
    fn = getattr(model, "shared_weights", None)
    return fn() if callable(fn) else {}


def stored_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The part of ``model.state_dict()`` a checkpoint's weights file holds: all but :func:`shared_weights`."""
    prefixes = tuple(shared_weights(model))
    return {k: v for k, v in model.state_dict().items() if not (prefixes and k.startswith(prefixes))}


def _load_state(model: torch.nn.Module, state: dict, card: dict, weights: Path) -> None:
    """Load a weights file into a built model: strictly, or for a card with ``shared_weights`` everything but the
    public backbones, whose tensors (already loaded by the model from their folders) must hash as recorded.

    Raises:
        CheckpointError: a shared backbone differs from the one the model was trained on, or keys do not match.
    """
    recorded = card.get("shared_weights") or {}
    if not recorded:
        model.load_state_dict(state, strict=True)
        return
    built = shared_weights(model)
    for prefix, entry in recorded.items():
        have = built.get(prefix, {}).get("tensor_sha256")
        if have != entry.get("tensor_sha256"):
            raise CheckpointError(
                f"{weights}: the public backbone at {entry.get('folder')} ({prefix}*) is not the one this model was "
                f"trained on (tensor sha256 {str(have)[:12]}, card {str(entry.get('tensor_sha256'))[:12]}): "
                "restore that folder (git checkout checkpoints/public) or retrain the model")
    missing, unexpected = model.load_state_dict(state, strict=False)
    stray = [k for k in missing if not k.startswith(tuple(recorded))]
    if stray or unexpected:
        raise RuntimeError(f"missing keys {stray[:5]}, unexpected keys {list(unexpected)[:5]}")


def save_checkpoint(directory: str | os.PathLike, model: torch.nn.Module, card: dict) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``directory`` (created if needed).

    ``model`` must be the plain module (not a DDP/Opacus/compiled wrapper). The card must hold
    ``arch``, ``model_args`` and ``classes``. Files are written to temporary names and renamed, so a
    crash never leaves half a checkpoint.

    Raises:
        ValueError: the card lacks a required key, or ``model`` is a wrapper.
    """
    for key in ("arch", "model_args", "classes"):
        if key not in card:
            raise ValueError(f"model card needs {key!r}")
    state = model.state_dict()
    if any(k.startswith(("_module.", "module.", "_orig_mod.")) for k in state):
        raise ValueError("save the unwrapped module (got a wrapper's state_dict)")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in stored_state(model).items()}
    card = {"card_version": CARD_VERSION, **card}
    shared = shared_weights(model)
    card.pop("shared_weights", None)
    if shared:
        card["shared_weights"] = shared
    tmp_w, tmp_c = d / (WEIGHTS_FILE + ".tmp"), d / (CARD_FILE + ".tmp")
    save_file(tensors, str(tmp_w), metadata={"arch": card["arch"]})
    tmp_c.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    os.replace(tmp_w, d / WEIGHTS_FILE)
    os.replace(tmp_c, d / CARD_FILE)
    return d


def read_card(path: str | os.PathLike | None = None) -> ModelCard:
    """The model card (``model.json``) of a checkpoint, without loading weights.

    Raises:
        CheckpointError: missing or not valid JSON.
    """
    d = resolve(path)
    card_path = d / CARD_FILE
    if not card_path.is_file():
        raise CheckpointError(f"no model card at {card_path}: a checkpoint folder holds {CARD_FILE} and {WEIGHTS_FILE}")
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{card_path} is not valid JSON ({exc})") from exc
    return ModelCard.from_json(card, str(card_path))


def load_checkpoint(path: str | os.PathLike | None = None) -> Checkpoint:
    """Load a checkpoint safely (safetensors; nothing is unpickled).

    Args:
        path: checkpoint folder, a file in it, a name under ``checkpoints/``, or ``None`` for the
            shipped default.

    Returns:
        :class:`Checkpoint` with the module in eval mode on the CPU.

    Raises:
        CheckpointError: the folder, card or weights are missing, corrupt, or do not match the
            architecture the card describes.
    """
    d = resolve(path)
    if not d.is_dir():
        raise CheckpointError(
            f"checkpoint not found: {d} (give a folder with {CARD_FILE} and {WEIGHTS_FILE}, "
            f"or a name under {CHECKPOINT_DIR})"
        )
    card = read_card(d)
    weights = d / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"no weights at {weights}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is corrupt or not a safetensors file ({exc})") from exc
    try:
        model = build_model(card["arch"], **card["model_args"])
        _load_state(model, state, card, weights)
    except CheckpointError:
        raise
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        detail = " ".join(str(exc).split())
        detail = detail if len(detail) <= 300 else detail[:300] + "…"
        raise CheckpointError(f"{weights} does not match the card's architecture ({detail})") from exc
    model = model.to(memory_format=torch.channels_last)  # ~30% faster convolutions on CPU
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Checkpoint(model=model, card=card, path=d)


def list_checkpoints(root: str | os.PathLike = CHECKPOINT_DIR) -> list[Path]:
    """Checkpoint folders under ``root`` (those holding a model card), sorted by name."""
    r = Path(root)
    if not r.is_dir():
        return []
    return sorted(p.parent for p in r.glob(f"*/{CARD_FILE}") if (p.parent / WEIGHTS_FILE).exists())


def update_card(path: str | os.PathLike, **fields) -> dict:
    """Set top-level fields of a checkpoint's model card (atomic rewrite; weights untouched).

    Raises:
        CheckpointError: no readable card at ``path``.
    """
    d = resolve(path)
    card = {**read_card(d), **fields}
    tmp = d / (CARD_FILE + ".tmp")
    tmp.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, d / CARD_FILE)
    return card
