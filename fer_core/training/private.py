"""Private training recipes: DP-SGD (Abadi et al. 2016) with Opacus, resumable, with honest selection.

Four methods (``TrainConfig.dp_method``), one loop:

* ``dp-sgd`` - end-to-end DP-SGD from random initialisation (the reference point).
* ``scatternet`` - DP-SGD on fixed wavelet-scattering features (Tramer & Boneh 2021): the
  scattering has no parameters and depends on no data, so it is computed once for every row and
  DP-SGD trains only the small CNN on top.
* ``two-stage`` - stage 1 is an ordinary run on the declared public share of ``Training``
  (``--train-rows public``); stage 2 (this loop) starts from that checkpoint and trains the head or
  the last block with DP-SGD on the remaining private rows. The frozen part was trained on public
  rows only, so its outputs are precomputed once, like the scattering.
* ``public-features`` - DP-SGD of a linear head (``--arch facex --trainable head``) on the frozen
  features of public backbones that never saw FER2013 (facex's MobileNetV2, optionally concatenated with SFace's
  face-identity trunk, ``--model-args '{"sface_features": ["conv_13"]}'``; disjointness checked by
  :func:`fer_core.models.facex_tflite.convert_facex` and :func:`fer_core.models.sface_onnx.convert_sface`). The
  features are computed once per backbone and kept on disk
  (:mod:`fer_core.training.features`); the head's standardisation buffers are set from the *selection*
  split's features (PublicTest), never from Training rows, so nothing computed from a training row
  escapes the accountant. Every Training row is private.
* ``public-finetune`` - the same public backbones, and DP-SGD also fine-tunes the model's own copies of facex's
  last blocks (``--trainable last-block``, ``--model-args '{"finetune_blocks": 3}'``: blocks 14-16) on the frozen
  backbone's cached output before them (:mod:`fer_core.models.facex_parts`); the public weights themselves stay
  frozen and shared. Every Training row is private.

Privacy: Poisson sampling (Opacus ``DPDataLoader``), per-sample clipping to ``max_grad_norm``,
Gaussian noise ``noise_multiplier * max_grad_norm``; the noise multiplier comes from a target
``epsilon`` via Opacus's accountant over all planned steps; the epsilon actually spent is read
from the engine's accountant at the end and written to the model card with every setting.
A run with ``noise_multiplier`` 0 (and ``max_grad_norm`` ``inf``: no clipping) is the method's *non-private
reference*: the same model, rows, features and loop with the privacy mechanism switched off - plain SGD
(the known answer of ``tests/test_dp.py``). Its card says it is not private (no epsilon) and names it a
reference (:func:`reference_block`); the sweep's ``--reference`` trains one per method
(:func:`fer_core.results.sweep.run_references`), the yardstick of what privacy costs that method.
Selection (epoch, raw or EMA weights) uses ``PublicTest``, which is not a training row:
post-processing that costs no privacy. Logical batches larger than memory allows are split by
Opacus's ``BatchMemoryManager``.

Distributed (under ``torchrun``, on CPU with ``gloo``): Opacus's distributed DP-SGD - the model in
``DifferentiallyPrivateDistributedDataParallel``, each rank Poisson-samples its shard of the rows
at the global sample rate, clips its own per-sample gradients, rank 0 alone adds the noise, and
the sums are all-reduced (:func:`fer_core.privacy.engine.make_private`). ``batch_size`` is the global
expected batch, so the accountant sees the same sample rate and steps as a single process would
and epsilon does not depend on the number of processes. Frozen-prefix features are precomputed by
every rank.
"""

from __future__ import annotations

import json
import math
import secrets
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from fer_core.data.augment import augment_batch
from fer_core.data.preprocess import to_model_input
from fer_core.models.architectures import MirrorViews, split_for_finetune
from fer_core.models.checkpoint import repo_relative
from fer_core.privacy.accounting import (
    DP_METHODS,
    PUBLIC_BACKBONE_METHODS,
    PrivacyError,
    noise_multiplier_for,
    sampling_plan,
    spent_epsilon,
)
from fer_core.privacy.engine import PrivateLoader, make_private, privacy_block
from fer_core.training.config import TrainConfig
from fer_core.training.distributed import SINGLE, DistContext, all_reduce_sum, rank_seed
from fer_core.training.features import prefix_features
from fer_core.training.optim import lr_at, make_ema, make_optimizer
from fer_core.training.validation import evaluate


def new_secret_seed(ctx: DistContext = SINGLE) -> int:
    """A secret seed for DP-SGD's sampling and noise: 52 bits of OS entropy (:mod:`secrets`), rank 0's on every
    rank. DP-SGD's guarantee is over the randomness of the batches and the noise; drawn from the public seed in
    the model card, both could be replayed. Kept in the resumable state (``state.pt`` under ``--out``), never in
    the card or the shipped checkpoint. (Torch's generator is not a cryptographic one; Opacus's ``secure_mode``
    with ``torchcsprng`` would be, and is not installable here.)"""
    mine = float(secrets.randbits(52)) if ctx.is_main else 0.0  # exact in float64, so it survives the sum
    return int(all_reduce_sum([mine], ctx)[0])


def secret_epoch_seed(secret_seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of one epoch's sampling and noise on one rank, derived from the secret seed (``SeedSequence``)."""
    return int(np.random.SeedSequence([secret_seed, epoch, rank]).generate_state(1, np.uint64)[0] >> 1)


def check_private_config(cfg: TrainConfig) -> None:
    """Refuse settings a private run cannot honour.

    Raises:
        fer_core.privacy.accounting.PrivacyError: naming the setting and how to fix it.
    """
    if cfg.dp_method not in DP_METHODS:
        raise PrivacyError(f"unknown dp_method {cfg.dp_method!r}; choose one of {', '.join(DP_METHODS)}")
    if (cfg.epsilon is None) == (cfg.noise_multiplier is None):
        raise PrivacyError("give exactly one of a target epsilon (--epsilon) or --noise-multiplier")
    if cfg.dp_method == "scatternet" and cfg.arch != "scatternet":
        raise PrivacyError(f"dp_method 'scatternet' trains the scatternet architecture, not {cfg.arch!r}")
    public = cfg.dp_method in PUBLIC_BACKBONE_METHODS
    if public != (cfg.arch == "facex"):
        raise PrivacyError(f"dp_method {' or '.join(map(repr, PUBLIC_BACKBONE_METHODS))} and arch 'facex' go "
                           f"together (got {cfg.dp_method!r} with {cfg.arch!r})")
    if cfg.dp_method == "public-features" and (cfg.trainable != "head" or cfg.init_from):
        raise PrivacyError("public-features trains the head only, from the public backbone: use --trainable head "
                           "and no --init-from (public-finetune also fine-tunes the backbone's last blocks)")
    if cfg.dp_method == "public-finetune" and (cfg.trainable != "last-block" or cfg.init_from
                                               or not cfg.model_args.get("finetune_blocks")):
        raise PrivacyError("public-finetune trains copies of the public backbone's last blocks and the head: use "
                           "--trainable last-block, --model-args '{\"finetune_blocks\": N}' (1-4) and no --init-from")
    if public and cfg.val_split == cfg.train_split:
        raise PrivacyError(f"{cfg.dp_method} standardises with the selection split's statistics: "
                           "--val-split must not be the training split")
    if cfg.dp_method == "two-stage" and not cfg.init_from:
        raise PrivacyError(
            "two-stage needs its stage-1 model: train one on the public share (--train-rows public) "
            "and pass it with --init-from"
        )
    if cfg.target != "majority":
        raise PrivacyError("private runs train on one label per face; use --target majority")
    if cfg.teacher:
        raise PrivacyError("a private run cannot learn from a teacher: the teacher's outputs on the private rows "
                           "are outside the accountant; drop --teacher")
    if cfg.model_args.get("norm", "group") != "group":
        raise PrivacyError("BatchNorm mixes the samples of a batch and has no per-sample gradients: private runs "
                           "need --model-args '{\"norm\": \"group\"}'")
    if cfg.train_rows != "all":
        raise PrivacyError("private runs choose their rows themselves (two-stage: the private share); "
                           "leave --train-rows at 'all'")


def reference_block(block: dict) -> dict:
    """The card's privacy block of a run without noise (``noise_multiplier`` 0): not private, no epsilon.

    Args:
        block: what :func:`fer_core.privacy.engine.privacy_block` gives for the run (its settings).

    Returns:
        ``block`` with ``private`` False, ``epsilon``/``target_epsilon``/``randomness``/``unit`` dropped,
        ``max_grad_norm`` None when nothing was clipped (``inf``) and a ``reference`` sentence saying what the run is.
    """
    out = {k: v for k, v in block.items() if k not in ("epsilon", "target_epsilon", "randomness", "unit")}
    clipped = math.isfinite(out["max_grad_norm"])
    out.update(private=False, max_grad_norm=out["max_grad_norm"] if clipped else None, reference=(
        f"non-private reference of {block['method']}: the same model, rows and loop without noise"
        + (f" (per-sample gradients still clipped to {out['max_grad_norm']:g})" if clipped else " or clipping")
        + "; no privacy guarantee"))
    return out


def check_stage1(cfg: TrainConfig, card: dict, sha256: str) -> None:
    """Stage 1 must have seen only the public share that stage 2 excludes.

    Raises:
        fer_core.privacy.accounting.PrivacyError: the stage-1 card shows private rows, another share or data file.
    """
    data = card.get("data", {})
    problems = []
    if data.get("train_rows") != "public":
        problems.append(f"it was trained on train_rows={data.get('train_rows', 'all')!r}, not 'public'")
    if data.get("public_fraction") != cfg.public_fraction or data.get("public_seed") != cfg.public_seed:
        problems.append(f"its public share is {data.get('public_fraction')}/seed {data.get('public_seed')}, "
                        f"this run's is {cfg.public_fraction}/seed {cfg.public_seed}")
    if data.get("sha256") != sha256:
        problems.append("it was trained on another data file")
    if card.is_private:
        problems.append("it is already a private model")
    if problems:
        raise PrivacyError(f"--init-from {cfg.init_from} cannot be stage 1 of this two-stage run: "
                           + "; ".join(problems))


@torch.no_grad()
def public_statistics(features: torch.Tensor, ctx: DistContext = SINGLE,
                      per_channel: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and (unbiased) standard deviation of ``float32 (N, D)`` selection-split features,
    over all ranks' shards when distributed (so every rank standardises alike). With ``per_channel``, of
    ``float32 (N, C, H, W)`` maps per channel ``(C,)``, every position of every face one sample."""
    f = (features.movedim(1, -1).reshape(-1, features.shape[1]) if per_channel else features).double()
    n = all_reduce_sum([float(len(f))], ctx)[0]
    total = torch.tensor(all_reduce_sum(f.sum(0).tolist(), ctx), dtype=torch.float64)
    squares = torch.tensor(all_reduce_sum((f * f).sum(0).tolist(), ctx), dtype=torch.float64)
    mean = total / n
    var = ((squares - n * mean * mean) / max(n - 1.0, 1.0)).clamp_min(0.0)
    return mean.float(), var.sqrt().float()


def train_one_epoch_private(
    dp: PrivateLoader,
    generator: torch.Generator,
    cfg: TrainConfig,
    epoch: int,
    total_steps: int,
    raw: bool,
    model: nn.Module,
    ema: AveragedModel | None = None,
    ctx: DistContext = SINGLE,
    secret_seed: int | None = None,
) -> dict:
    """One pass of DP-SGD over the private rows (Poisson batches; about 1 / sample_rate steps).

    Args:
        dp: from :func:`fer_core.privacy.engine.make_private` (wrapped tail, DP optimizer, Poisson loader).
        generator: the generator the Poisson sampler draws from; reseeded every epoch so a resumed run
            draws the same batches (the noise uses torch's global RNG, reseeded alike).
        secret_seed: the run's secret seed (:func:`new_secret_seed`): sampling and noise are drawn from
            ``(secret_seed, epoch, rank)``; None draws them from the public ``cfg.seed`` (tests only: the
            guarantee assumes the adversary cannot reproduce the noise or the batches).
        raw: inputs are ``uint8`` faces (preprocessed, and augmented if configured, per batch)
            rather than precomputed features.
        model: the full unwrapped model (for EMA).
        total_steps: planned logical steps of the whole run (learning-rate schedule).
        ctx: the distributed context; each rank draws its Poisson batches from its own seed and
            takes a step for every logical batch, an empty one included, so all ranks step together.

    Returns:
        ``{"epoch", "train_loss", "train_accuracy", "lr", "steps", "seconds", "samples_per_s"}``
        (loss and accuracy on the sampled, noised-over batches of all ranks, before the step).
    """
    from opacus.utils.batch_memory_manager import BatchMemoryManager  # heavy; private runs only

    seed = rank_seed(cfg.epoch_seed(epoch), ctx)
    dp_seed = seed if secret_seed is None else secret_epoch_seed(secret_seed, epoch, ctx.rank if ctx.distributed else 0)
    generator.manual_seed(dp_seed)  # Poisson sampling
    torch.manual_seed(dp_seed)  # DP noise (rank 0 only when distributed) and dropout
    g_aug = torch.Generator().manual_seed(seed + 1)
    aug = cfg.augment_config
    steps_per_epoch = len(dp.data_loader)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    step = epoch * steps_per_epoch
    dp.model.train()
    loss_sum, correct, seen, steps = 0.0, 0, 0, 0
    start = time.perf_counter()
    lr = lr_at(step, total_steps, warmup, cfg.lr)
    with warnings.catch_warnings(), BatchMemoryManager(
        data_loader=dp.data_loader, max_physical_batch_size=cfg.physical_batch_size, optimizer=dp.optimizer
    ) as batches:
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs} (DP)", leave=False,
                   disable=not (cfg.progress and ctx.is_main), mininterval=5.0, file=sys.stderr)
        # Opacus's backward hooks on a tail whose inputs need no gradient: expected, harmless.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for x, y in bar:
            if len(y) == 0 and not ctx.distributed:  # Poisson sampling can draw an empty batch
                continue  # (distributed: every rank must step, so an empty local batch goes through)
            lr = lr_at(step + steps, total_steps, warmup, cfg.lr)
            for group in dp.optimizer.param_groups:
                group["lr"] = lr
            if raw:
                x = to_model_input(x)  # (B, 1, 48, 48)
                if cfg.augment and len(x):  # (an empty local batch of a distributed run has nothing to augment)
                    x = augment_batch(x, aug, g_aug)
            logits = dp.model(x)  # (B, K)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            dp.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            dp.optimizer.step()
            if not dp.optimizer._is_last_step_skipped:  # a logical (noised) step was taken
                steps += 1
                if ema is not None:
                    ema.update_parameters(model)
            if len(y):  # the mean loss of an empty batch is NaN
                loss_sum += float(loss.detach()) * len(y)
                correct += int((logits.detach().argmax(1) == y).sum())
                seen += len(y)
    seconds = time.perf_counter() - start
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], ctx)
    return {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
            "lr": lr, "steps": steps, "seconds": seconds, "samples_per_s": seen / max(seconds, 1e-9)}


class PrivateStrategy:
    """What the lifecycle needs from a DP-SGD run (:data:`~fer_core.privacy.accounting.DP_METHODS`).

    Splits the model into a frozen prefix (precomputed once: scattering, or a two-stage trunk) and
    the tail DP-SGD trains; builds the Poisson loader over the private rows, the noise multiplier
    for the target epsilon over all planned steps (:func:`~fer_core.privacy.accounting.sampling_plan`)
    and the Opacus engine (:func:`~fer_core.privacy.engine.make_private`). Adds the accountant's
    history to the resumable state and the privacy block to the card.
    """

    private = True  # the strategy of private methods; a run without noise is their non-private reference

    @staticmethod
    def check(cfg: TrainConfig) -> None:
        check_private_config(cfg)

    @staticmethod
    def rows(cfg: TrainConfig) -> str:
        return "private" if cfg.dp_method == "two-stage" else "all"

    @staticmethod
    def session_device(cfg: TrainConfig) -> torch.device:
        return torch.device("cpu")  # Opacus's distributed DP-SGD here runs on gloo

    def __init__(self, cfg: TrainConfig, model: nn.Module, model_args: dict, train_x, train_y, val_x, val_y,
                 device: torch.device, ctx: DistContext, sha256: str = "", library: np.ndarray | None = None) -> None:
        self.cfg, self.model, self.ctx = cfg, model, ctx
        self.n = n = len(train_y)
        if cfg.delta >= 1.0 / n:
            raise PrivacyError(f"delta={cfg.delta} is not below 1/N = {1.0 / n:.2e} for {n} private rows")
        if device.type != "cpu" and ctx.is_main:
            print("note: private training runs on the CPU path of this loop", file=sys.stderr)
        model.to(memory_format=torch.contiguous_format)
        prefix, self.tail = split_for_finetune(model, cfg.trainable)
        trainable = {id(p) for p in getattr(self.tail, "trainable_parameters", self.tail.parameters)()}
        for p in model.parameters():
            p.requires_grad_(id(p) in trainable)
        self.raw = isinstance(prefix, nn.Identity)
        t_features = time.perf_counter()
        self.standardisation = None
        if self.raw:
            train_in, self.val_in = torch.from_numpy(train_x), torch.from_numpy(val_x)
        else:  # a frozen prefix: its features computed once (runs/features/ for a public backbone)
            show = cfg.progress and ctx.is_main
            train_in = prefix_features(prefix, train_x, sha256, library=library, progress=show)
            self.val_in = prefix_features(prefix, val_x, sha256, library=library, progress=show)
            views = isinstance(self.tail, MirrorViews)  # features (N, 2, ...): a face and its mirror image
            head = self.tail.head if views else self.tail
            tuned = hasattr(head, "head_input")  # fine-tuned blocks before the head (facex --trainable last-block)
            head = head.head if tuned else head
            standardiser = head[0] if isinstance(head, nn.Sequential) else None
            if hasattr(standardiser, "set_statistics"):  # public statistics only (never Training rows)
                per_channel = getattr(standardiser, "per_channel", False)
                public = self.val_in.flatten(0, 1) if views else self.val_in  # both views standardised alike
                if tuned:  # the head's inputs through the tuned blocks as they start (the public weights)
                    with torch.no_grad():
                        public = torch.cat([self.tail.head_input(public[i: i + 1024])
                                            for i in range(0, len(public), 1024)])
                standardiser.set_statistics(*public_statistics(public, ctx, per_channel=per_channel))
                self.standardisation = f"{cfg.val_split} statistics" + (
                    " of the features at the public weights (fixed while the blocks are fine-tuned)" if tuned else "")
        self.feature_s = time.perf_counter() - t_features
        if not self.raw and cfg.augment and ctx.is_main:
            print("note: --augment is not applied: this run trains on features computed once from the faces as they "
                  "are (ScatterNet: --model-args '{\"mirror_views\": true}' trains on a random mirror view)",
                  file=sys.stderr)
        self.val_y = val_y
        self.generator = torch.Generator()
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(train_in, torch.from_numpy(train_y)),
                                             batch_size=cfg.batch_size, generator=self.generator)
        # Opacus's Poisson loader samples each row with q = 1 / len(loader) and yields len(loader) batches
        # per epoch; the accountant records exactly these (sigma, q, steps), and so does the planner.
        self.plan = sampling_plan(n, cfg.batch_size, cfg.epochs)
        assert len(loader) == self.plan.steps_per_epoch, "the sampling plan must match Opacus's loader"
        if cfg.noise_multiplier is not None:
            self.sigma = float(cfg.noise_multiplier)
        else:
            self.sigma = noise_multiplier_for(cfg.epsilon, cfg.delta, self.plan.sample_rate, self.plan.steps,
                                              cfg.accountant)
        self.reference = self.sigma == 0.0  # no noise: the method's non-private reference
        self.secret_seed = new_secret_seed(ctx) if cfg.secret_randomness else None  # a resumed run reads its own
        self.ema = make_ema(model, cfg)
        self.ema_tail = split_for_finetune(self.ema.module, cfg.trainable)[1] if self.ema is not None else None
        optimizer = make_optimizer(self.tail, cfg)
        self.tail.train()
        self.dp = make_private(self.tail, optimizer, loader, noise_multiplier=self.sigma,
                               max_grad_norm=cfg.max_grad_norm, accountant=cfg.accountant,
                               grad_sample_mode=cfg.grad_sample_mode, distributed=ctx.distributed)
        if self.ema is not None and ctx.distributed:  # the tail now holds rank 0's weights: so does the EMA
            self.ema.module.load_state_dict(model.state_dict())

    def describe(self) -> str:
        cfg = self.cfg
        return (("non-private reference (no noise) of " if self.reference else "")
                + f"{cfg.dp_method}: {self.n:,} private rows, sample_rate {self.plan.sample_rate:.5f}, "
                f"noise_multiplier {self.sigma:.4f}, max_grad_norm {cfg.max_grad_norm}, {self.plan.steps} steps "
                f"({cfg.accountant})"
                + (f", features precomputed in {self.feature_s:.0f} s" if not self.raw else "")
                + (f", data parallel over {self.ctx.world_size} processes ({self.ctx.backend})"
                   if self.ctx.distributed else ""))

    def train_epoch(self, epoch: int) -> dict:
        row = train_one_epoch_private(self.dp, self.generator, self.cfg, epoch, self.plan.steps, self.raw,
                                      self.model, self.ema, self.ctx, secret_seed=self.secret_seed)
        row["epsilon"] = self.epsilon()
        return row

    def epsilon(self) -> float | None:
        """Epsilon spent so far (the engine's accountant); None for a run without noise, which promises none."""
        return None if self.reference else spent_epsilon(self.dp.engine, self.cfg.delta)

    def validate(self, which: str) -> dict:
        return evaluate(self.tail if which == "raw" else self.ema_tail, self.val_in, self.val_y, raw=self.raw)

    def optimizer_state(self) -> dict:
        return self.dp.optimizer.original_optimizer.state_dict()

    def load_state(self, state: dict) -> None:
        self.dp.optimizer.original_optimizer.load_state_dict(state["optimizer"])
        self.dp.engine.accountant.history = [tuple(h) for h in json.loads(state["accountant_history"])]
        if self.cfg.secret_randomness:
            if "secret_seed" not in state:
                raise PrivacyError("this run's saved state has no secret seed (it was started with public-seed noise): "
                                   "start it afresh in a new --out to train with secret randomness")
            self.secret_seed = int(state["secret_seed"])

    def extra_state(self) -> dict:
        extra = {"accountant_history": json.dumps([list(h) for h in self.dp.engine.accountant.history])}
        if self.secret_seed is not None:
            extra["secret_seed"] = str(self.secret_seed)  # under --out only: never copied into the card
        return extra

    def log_suffix(self, row: dict) -> str:
        return " | no noise: not private" if row["epsilon"] is None else f" | epsilon {row['epsilon']:.3f}"

    def result(self) -> dict:
        return {"epsilon": self.epsilon()}

    def card_blocks(self) -> dict:
        """Blocks this strategy adds to the model card beyond ``privacy``: none."""
        return {}

    def privacy(self, rows: dict, train_rows: int) -> dict:
        """The card's privacy block: epsilon spent, the settings it rests on, which rows are private."""
        cfg = self.cfg
        steps = sum(int(h[2]) for h in self.dp.engine.accountant.history)
        block = privacy_block(
            method=cfg.dp_method, epsilon=spent_epsilon(self.dp.engine, cfg.delta), delta=cfg.delta,
            accountant=cfg.accountant, noise_multiplier=self.sigma, max_grad_norm=cfg.max_grad_norm,
            sample_rate=self.plan.sample_rate, batch_size=round(self.plan.sample_rate * self.n), steps=steps,
            epochs=cfg.epochs, private_rows=self.n, rows_description=rows["description"],
            target_epsilon=cfg.epsilon, trainable=cfg.trainable, public_rows=rows.get("public_rows", 0),
            secret_randomness=cfg.secret_randomness,
        )
        if cfg.dp_method == "two-stage":
            block["stage1_checkpoint"] = repo_relative(cfg.init_from)
        if self.standardisation:
            block["feature_standardisation"] = self.standardisation
        if cfg.dp_method in PUBLIC_BACKBONE_METHODS:
            block["public_backbones"] = self.model.provenances()
        if cfg.dp_method == "public-finetune":
            first, last = self.model.first_tuned, self.model.first_tuned + self.model.finetune_blocks - 1
            block["finetuned_blocks"] = f"facex blocks {first}-{last} (the model's own copies, from the public weights)"
        return reference_block(block) if self.reference else block
