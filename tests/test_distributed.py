"""Data-parallel training under torchrun: 2 CPU processes (gloo, loopback) against one process.

The launches run ``python -m fer_core train`` exactly as a user would, through
``python -m torch.distributed.run`` (torchrun). Without augmentation and dropout, data-parallel
SGD over a global batch computes the same mean gradient as one process over that batch, so the
2-process run must reproduce the 1-process run up to float rounding; its two ranks must hold
bit-identical weights after every epoch; and a private run must spend exactly the epsilon of one
process with the same global batch and steps (Opacus's accountant).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, TINY_RESNET, write_npz
from safetensors.torch import load_file

from fer_core.privacy.accounting import epsilon_for, noise_multiplier_for
from fer_core.training.config import TrainConfig
from fer_core.training.distributed import (
    SINGLE,
    WEIGHTS_DIR_ENV,
    DistContext,
    per_rank_batch,
    rank_seed,
    reduce_metrics,
    shard,
)
from fer_core.training.lifecycle import main

MODEL_ARGS = {**TINY_RESNET, "dropout": 0.0}  # no randomness besides the seeded data order
RECIPE = dict(arch="resnet", model_args=MODEL_ARGS, epochs=2, batch_size=32, augment={}, ema_decay=0.9,
              channels_last=False, threads=1, progress=False)


def _cli_args(cfg: TrainConfig) -> list[str]:
    args = ["--data", cfg.data, "--out", cfg.out, "--arch", cfg.arch, "--model-args", json.dumps(cfg.model_args),
            "--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size), "--lr", str(cfg.lr),
            "--warmup-epochs", str(cfg.warmup_epochs), "--ema-decay", str(cfg.ema_decay), "--augment", "off",
            "--threads", "1", "--no-channels-last", "--no-progress"]
    if cfg.dp_method:
        args += ["--dp-method", cfg.dp_method, "--epsilon", str(cfg.epsilon), "--delta", str(cfg.delta)]
    return args


def torchrun(args: list[str], weights_dir, nproc: int = 2) -> tuple[dict | None, str]:
    """Launch ``python -m fer_core train ARGS`` on ``nproc`` local processes; rank 0's summary and stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", WEIGHTS_DIR_ENV: str(weights_dir),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "fer_core", "train", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    return (json.loads(out[out.index("{"):]) if "{" in out else None), proc.stderr


def assert_ranks_identical(weights_dir, epochs: int) -> None:
    for e in range(1, epochs + 1):
        r0 = load_file(str(weights_dir / f"rank0_epoch{e}.safetensors"))
        r1 = load_file(str(weights_dir / f"rank1_epoch{e}.safetensors"))
        assert r0.keys() == r1.keys() and len(r0) > 10
        for k in r0:
            assert torch.equal(r0[k], r1[k]), f"epoch {e}: {k} differs between ranks"


@pytest.mark.slow
def test_two_processes_train_like_one_resume_and_keep_ranks_identical(tmp_path):
    npz = write_npz(tmp_path / "s.npz", n_train=128, n_val=32, n_test=32)
    one = main(TrainConfig(out=str(tmp_path / "one"), data=str(npz), lr=0.05, warmup_epochs=0.5, **RECIPE))

    cfg = TrainConfig(out=str(tmp_path / "two"), data=str(npz), lr=0.05, warmup_epochs=0.5, **RECIPE)
    w = tmp_path / "weights"
    first, _ = torchrun([*_cli_args(cfg), "--stop-after", "1"], w)  # "killed" after one epoch ...
    assert first["finished"] is False
    summary, err = torchrun([*_cli_args(cfg), "--export", str(tmp_path / "ck")], w)  # ... and resumed
    assert summary["finished"] and summary["checkpoint"] == str(tmp_path / "ck")
    assert err.count("resuming") == 1 and "2 processes (gloo), global batch 32 = 2 x 16" in err

    assert_ranks_identical(w, epochs=2)
    card = json.loads((tmp_path / "two" / "final_card.json").read_text())
    assert card["hardware"]["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert len(card["resumed_with"]) == 1 and card["config"]["batch_size"] == 32
    # The same SGD as one process over the same global batches.
    for a, b in zip(one["history"], card["history"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["train_accuracy"] == a["train_accuracy"] and b["val_accuracy"] == a["val_accuracy"]
    final = load_file(str(w / "rank0_epoch2.safetensors"))
    state = torch.load(tmp_path / "one" / "state.pt", weights_only=True)
    for k, v in state["model"].items():
        torch.testing.assert_close(final[f"0.{k}"], v, rtol=1e-4, atol=1e-5, msg=k)
    assert summary["accuracy"]["PublicTest"] == pytest.approx(card["metrics"]["PublicTest"]["accuracy"])


@pytest.mark.slow
def test_two_process_dp_run_spends_the_epsilon_of_one_process(tmp_path):
    """Global batch 4 of 128 rows (q = 1/32): each rank's Poisson share (64 rows) comes out empty in
    about 13 % of the steps, and logical batches are split into physical batches of 2 - the ranks
    must still take every step together."""
    npz = write_npz(tmp_path / "s.npz", n_train=128, n_val=32, n_test=32)
    cfg = TrainConfig(out=str(tmp_path / "two"), data=str(npz), dp_method="dp-sgd", epsilon=8.0, delta=1e-3, lr=0.5,
                      warmup_epochs=0.0, **{**RECIPE, "batch_size": 4})
    w = tmp_path / "weights"
    summary, err = torchrun([*_cli_args(cfg), "--physical-batch-size", "2"], w)
    assert summary["finished"] and "data parallel over 2 processes (gloo)" in err

    assert_ranks_identical(w, epochs=2)
    card = json.loads((tmp_path / "two" / "final_card.json").read_text())
    p = card["privacy"]
    # The accountant saw the global batch: q = 4 / 128 and 32 steps per epoch, as one process would.
    q, steps = 4 / 128, 2 * 32
    assert p["sample_rate"] == pytest.approx(q) and p["expected_batch_size"] == 4 and p["steps"] == steps
    assert [h["steps"] for h in card["history"]] == [32, 32]
    assert p["noise_multiplier"] == noise_multiplier_for(8.0, 1e-3, q, steps)  # one process's calibration
    assert summary["epsilon"] == pytest.approx(epsilon_for(p["noise_multiplier"], q, steps, delta=1e-3), rel=1e-9)
    assert summary["epsilon"] == pytest.approx(8.0, abs=0.05)


def test_lockstep_sampler_steps_on_empty_local_batches():
    """Opacus's distributed sampler skips empty local batches (a rank would fall a step behind);
    ours yields every step, at the same rate, over the same rows."""
    import torch.distributed as dist
    from opacus.utils.uniform_sampler import DistributedUniformWithReplacementSampler

    from fer_core.privacy.sampling import LockstepDistributedSampler

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        kw = dict(total_size=4, sample_rate=0.1)
        ours = list(LockstepDistributedSampler(**kw, generator=torch.Generator().manual_seed(0)))
        upstream = list(DistributedUniformWithReplacementSampler(**kw, generator=torch.Generator().manual_seed(0)))
    finally:
        dist.destroy_process_group()
    assert len(ours) == 10 and sum(len(b) == 0 for b in ours) >= 3  # 0.9**4 = 66 % of draws are empty
    assert [b for b in ours if b] == [b.tolist() for b in upstream]  # the same draws otherwise
    assert len(upstream) < len(ours)
    assert all(0 <= i < 4 for b in ours for i in b)


def test_batches_seeds_and_shards_per_rank():
    ranks = [DistContext(rank=r, world_size=3) for r in range(3)]
    assert per_rank_batch(96, ranks[0]) == 32 and per_rank_batch(7, SINGLE) == 7
    with pytest.raises(ValueError, match="multiple of 3"):
        per_rank_batch(100, ranks[1])
    assert rank_seed(12345, SINGLE) == 12345  # single-process runs draw what they always drew
    seeds = [rank_seed(12345, c) for c in ranks]
    assert len(set(seeds)) == 3 and seeds == [rank_seed(12345, c) for c in ranks]
    rows = list(range(10))
    parts = [shard(rows, c) for c in ranks]
    assert sorted(sum(parts, [])) == rows and shard(rows, SINGLE) == rows
    report = {"loss": 1.5, "accuracy": 0.5, "n": 4}
    assert reduce_metrics(report, SINGLE) == report
