"""The configuration of a training run, declared once.

:class:`TrainConfig` holds every option of a run and is frozen into the model card. Each field
carries its command-line metadata (help text, choices from the registries, the flag's group), and
:func:`add_config_arguments` / :func:`config_from_arguments` generate ``python -m fer_core train``'s
flags from it: a new option is one field, never a field plus a flag plus a mapping line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, field

import torch

from fer_core import LABEL_SETS
from fer_core.data.augment import AugmentConfig
from fer_core.models.architectures import ALL_ARCHITECTURES, TRAINABLE_PARTS
from fer_core.privacy.accounting import ACCOUNTANTS, DELTA, DP_METHODS

OPTIMIZERS = ("sgd", "adamw")
TARGETS = ("majority", "distribution")
TRAIN_ROWS = ("all", "public")
DEVICES = ("auto", "cpu", "cuda")
GRAD_SAMPLE_MODES = ("hooks", "ew")  # Opacus per-sample-gradient modes that handle our conv nets

#: Flag groups, in the order ``--help`` lists them; ``recipe`` is shared with ``compare-archs``.
GROUPS = ("run", "model", "recipe", "distillation", "rows and differential privacy")
#: Options that may change between invocations of one run; every other one must match to resume.
FREE_OPTIONS = ("stop_after", "export", "name", "progress", "threads", "compile", "device", "data")


def option(default=None, *, help: str, group: str = "recipe", choices: tuple | None = None,
           default_factory=None, json_object: bool = False):
    """A :class:`TrainConfig` field with its command-line metadata.

    Args:
        help: the flag's help text. group: one of :data:`GROUPS`.
        choices: allowed values, taken from a registry (never restated).
        json_object: the flag takes a JSON object (``dict`` fields).
    """
    meta = {"help": help, "group": group, "choices": choices, "json": json_object}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def _default_augment() -> dict:
    return dataclasses.asdict(AugmentConfig())


@dataclass
class TrainConfig:
    """Everything that defines a training run; frozen into the model card.

    Units: ``lr`` is the peak learning rate; ``warmup_epochs`` and ``epochs`` count passes over
    the training rows; ``ema_decay`` is per optimizer step (0 disables EMA); ``delta`` is the DP
    failure probability (must be below 1/N); ``max_grad_norm`` is an L2 norm.
    """

    # --- run
    out: str = option("runs/fer2013_resnet", group="run", help="run folder holding the resumable state")
    data: str | None = option(None, group="run", help="dataset (.npz, .csv or image folder); default $FER_DATA "
                              "or ../shared/data/fer2013.npz")
    export: str | None = option(None, group="run", help="checkpoint folder to write when done "
                                "(e.g. checkpoints/my_model)")
    name: str | None = option(None, group="run", help="model name in the card (default: the export folder's name)")
    stop_after: int | None = option(None, group="run", help="stop after N epochs in this invocation (resume later)")
    threads: int = option(0, group="run", help="torch threads (0: torch's default)")
    compile: bool = option(False, group="run", help="torch.compile the training step (faster on CPU after ~30 s)")
    channels_last: bool = option(True, group="run", help="channels-last memory format (faster convolutions on CPU)")
    device: str = option("auto", group="run", choices=DEVICES, help="where to train")
    progress: bool = option(True, group="run", help="progress bar on stderr")
    # --- model
    arch: str = option("resnet", group="model", choices=ALL_ARCHITECTURES, help="architecture")
    model_args: dict = option(group="model", default_factory=dict, json_object=True,
                              help='architecture arguments, JSON, e.g. \'{"widths": [32, 64, 128, 256]}\'')
    init_from: str | None = option(None, group="model", help="start from this checkpoint's weights (fine-tuning; "
                                   "same architecture; from another label set every tensor but the classifier)")
    label_set: str = option("fer2013", group="model", choices=tuple(LABEL_SETS),
                            help="fer2013: the 7 original labels; ferplus: 8 classes from the FER+ votes "
                            "(Barsoum et al. 2016; needs a .npz with ferplus_votes)")
    target: str = option("majority", group="model", choices=TARGETS,
                         help="train on one class per face, or on the FER+ vote distribution (soft cross-entropy)")
    # --- recipe
    epochs: int = option(40, help="passes over the training rows")
    batch_size: int = option(128, help="global batch (under torchrun: split evenly over the processes; DP: the "
                             "expected Poisson batch)")
    optimizer: str = option("sgd", choices=OPTIMIZERS, help="SGD with Nesterov momentum, or AdamW")
    lr: float = option(0.1, help="peak learning rate (linear warm-up, then cosine decay per step)")
    momentum: float = option(0.9, help="SGD momentum")
    weight_decay: float = option(5e-4, help="L2 weight decay (not on biases and normalisation parameters)")
    warmup_epochs: float = option(2.0, help="epochs of linear learning-rate warm-up")
    label_smoothing: float = option(0.1, help="label smoothing (Szegedy et al. 2016)")
    ema_decay: float = option(0.999, help="weight EMA decay per step; 0 disables EMA")
    augment: dict = option(default_factory=_default_augment, json_object=True,
                           help="augmentation strengths, JSON overriding the defaults, e.g. "
                           "'{\"rotation_deg\": 10, \"erase_p\": 0.25}' (keys: "
                           + ", ".join(f.name for f in dataclasses.fields(AugmentConfig)) + "), or 'off'")
    seed: int = option(0, help="seed of initialisation, shuffling and augmentation (and of DP-SGD's sampling and "
                       "noise only with --no-secret-randomness)")
    train_split: str = option("Training", help="split trained on")
    val_split: str = option("PublicTest", help="split the epoch and weights are chosen on")
    test_split: str = option("PrivateTest", help="split evaluated once, at the end")
    val_fraction: float = option(0.1, help="share of the training split carved out (seeded) as the validation "
                                 "split when the data has none")
    limit_train: int | None = option(None, help="use only the first N training rows (tests, smoke runs)")
    # --- distillation (Hinton et al. 2015)
    teacher: str | None = option(None, group="distillation",
                                 help="teacher checkpoint folder(s), comma-separated (an ensemble averages their "
                                      "softened probabilities); the student learns from their outputs on the same "
                                      "augmented batch")
    kd_temperature: float = option(4.0, group="distillation", help="softmax temperature T of teacher and student")
    kd_alpha: float = option(0.9, group="distillation",
                             help="weight of the distillation term (T^2-scaled KL); 1 - alpha weighs the label loss")
    teacher_flip: bool = option(False, group="distillation",
                                help="teacher outputs averaged over each face and its mirror image")
    kd_views: int = option(0, group="distillation",
                           help="0: the teacher runs on every augmented batch; V > 0: its outputs on V fixed "
                                "augmented views of the training faces are computed once (FKD, Shen & Xing 2022) "
                                "and epoch e trains on view e mod V")

    # --- rows and differential privacy
    train_rows: str = option("all", group="rows and differential privacy", choices=TRAIN_ROWS,
                             help="'public': only the declared public share of Training (two-stage stage 1)")
    public_fraction: float = option(0.15, group="rows and differential privacy",
                                    help="share of Training declared public (two-stage)")
    public_seed: int = option(0, group="rows and differential privacy", help="seed of the public/private split")
    dp_method: str | None = option(None, group="rows and differential privacy", choices=DP_METHODS,
                                   help="train with DP-SGD (default: not private)")
    epsilon: float | None = option(None, group="rows and differential privacy",
                                   help="target epsilon (sets the noise multiplier via the accountant)")
    delta: float = option(DELTA, group="rows and differential privacy", help="target delta, below 1/N")
    noise_multiplier: float | None = option(None, group="rows and differential privacy",
                                            help="sigma, instead of a target epsilon")
    max_grad_norm: float = option(1.0, group="rows and differential privacy", help="per-sample L2 clipping bound")
    secret_randomness: bool = option(True, group="rows and differential privacy",
                                     help="draw DP-SGD's Poisson sampling and noise from a secret seed (OS entropy, "
                                     "kept in the run's resumable state under --out, never in the model card), as the "
                                     "privacy guarantee requires; --no-secret-randomness draws them from --seed, "
                                     "reproducibly: for tests only, epsilon then does not hold against anyone who "
                                     "knows the seed")
    accountant: str = option("prv", group="rows and differential privacy", choices=ACCOUNTANTS,
                             help="privacy accountant (PRV: Gopi et al. 2021; RDP: Mironov 2017)")
    trainable: str = option("all", group="rows and differential privacy", choices=TRAINABLE_PARTS,
                            help="what DP-SGD trains; the rest is frozen (two-stage: 'head' or 'last-block')")
    physical_batch_size: int = option(256, group="rows and differential privacy",
                                      help="largest batch in memory at once (Opacus BatchMemoryManager); "
                                      "--batch-size is the expected logical batch")
    twin: int | None = option(None, group="rows and differential privacy",
                              help="train audit twin number TWIN: a seeded random half of the rows (the other "
                              "half are its same-distribution non-members; see fer_core.audit.twins)")
    twins: int = option(16, group="rows and differential privacy",
                        help="how many audit twins share the rows (every row is in half of them)")
    twin_seed: int = option(0, group="rows and differential privacy", help="seed of the twins' halves")
    grad_sample_mode: str = option("hooks", group="rows and differential privacy", choices=GRAD_SAMPLE_MODES,
                                   help="Opacus per-sample gradient mode")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config: dict, **overrides) -> TrainConfig:
        """The config a model card recorded (``card["config"]``), with ``overrides`` on top.

        Keys of fields added since that card was written take their defaults; keys this version no
        longer knows are ignored.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in config.items() if k in known}, **overrides})

    @property
    def augment_config(self) -> AugmentConfig:
        """:attr:`augment` as an :class:`~fer_core.data.augment.AugmentConfig` (lists from JSON as tuples)."""
        return AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.augment.items()})

    def epoch_seed(self, epoch: int) -> int:
        """The seed of epoch ``epoch``'s shuffling, augmentation, DP sampling and noise (0-based epoch):
        a resumed run draws exactly what an uninterrupted one would."""
        return self.seed * 100_003 + epoch

    def torch_device(self) -> torch.device:
        """:attr:`device` resolved (``auto``: CUDA when available, else CPU)."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


# --- the command line, generated from the fields -------------------------------------------------------------------


def flag(name: str) -> str:
    """The command-line flag of a config field: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def _scalar_type(hint) -> type:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def add_config_arguments(parser: argparse.ArgumentParser, groups: tuple[str, ...] = GROUPS,
                         defaults: TrainConfig | None = None, also: tuple[str, ...] = ()) -> None:
    """Add one flag per :class:`TrainConfig` field of ``groups`` (and the fields named in ``also``).

    Name ``--field-name``; type, default, help and choices from the field; booleans as
    ``--flag/--no-flag``; dict fields as JSON objects. ``defaults`` overrides the shown defaults.
    """
    d = defaults or TrainConfig()
    hints = typing.get_type_hints(TrainConfig)
    wanted = [f for f in dataclasses.fields(TrainConfig) if f.metadata["group"] in groups or f.name in also]
    arg_groups = {g: parser.add_argument_group(g) for g in GROUPS if any(f.metadata["group"] == g for f in wanted)}
    for f in wanted:
        meta = f.metadata
        kwargs: dict = {"help": meta["help"], "dest": f.name}
        kind = _scalar_type(hints[f.name])
        if meta.get("json"):
            kwargs.update(default=None, metavar="JSON")
        elif kind is bool:
            kwargs.update(action=argparse.BooleanOptionalAction, default=getattr(d, f.name))
        else:
            kwargs.update(type=kind, default=getattr(d, f.name))
            if meta.get("choices"):
                kwargs["choices"] = list(meta["choices"])
        arg_groups[meta["group"]].add_argument(flag(f.name), **kwargs)


def json_object_argument(text: str) -> dict:
    """An argparse ``type``: a JSON object, or :class:`argparse.ArgumentTypeError` saying what was wrong."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, e.g. \'{"epochs": 10}\'')
    return value


def _json_object(name: str, text: str, defaults: dict) -> dict:
    if name == "augment" and text.strip().lower() in ("off", "none"):
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag(name)} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag(name)} must be a JSON object, e.g. '{{\"key\": 1}}'")
    if name == "augment":  # strengths override the defaults, key by key
        unknown = sorted(set(value) - set(defaults))
        if unknown:
            raise ValueError(f"unknown {flag(name)} key(s) {unknown}; known: {sorted(defaults)}")
        return {**defaults, **value}
    return value


def config_from_arguments(args: argparse.Namespace, **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of parsed flags (fields without a flag in ``args`` keep their defaults).

    Raises:
        ValueError: a JSON flag that is not a JSON object, or an unknown augmentation key.
    """
    d = TrainConfig()
    values = {}
    for f in dataclasses.fields(TrainConfig):
        if not hasattr(args, f.name):
            continue
        v = getattr(args, f.name)
        if f.metadata.get("json"):
            v = _json_object(f.name, v, getattr(d, f.name)) if v is not None else getattr(d, f.name)
        values[f.name] = v
    return TrainConfig(**{**values, **overrides})
