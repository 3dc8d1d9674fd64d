"""Inference speed of a checkpoint on the machine it runs on, the committed speed figures, and the
Benchmarks table that puts every shipped model's figures side by side.

One implementation serves the app's Benchmarks page, ``python -m fer_core bench`` and
``benchmarks/bench_infer.py``:

* :func:`measure_model` times three things for one checkpoint, each in a time-bounded loop:
  classifier throughput at batch 1 and at batch 64 (faces/s) and the end-to-end latency of a 1 MP
  photo with one face (ms; JPEG bytes in, faces with emotions and the annotated image out).
  :func:`machine_info` describes the machine (CPU, cores, torch threads and version).
* :func:`fer_core.results.files.write_speed` / :func:`fer_core.results.files.read_speed` keep the committed
  figures in ``checkpoints/results/speed.csv`` (``python -m fer_core bench --write``).
* :func:`fer_core.results.tables.benchmark_rows` joins the model cards, the membership-inference audit
  (``checkpoints/results/audit.csv``) and the speed file into one row per model.

Speed figures are medians of per-iteration wall times after one warm-up call, so a short burst of
contention from another process moves them less than a mean would; they still depend on the CPU,
the number of torch threads and what else runs on the machine.
"""

from __future__ import annotations

import io
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fer_core.data.images import load_image
from fer_core.inference.detect import FaceDetector
from fer_core.inference.pipeline import SAMPLE_PHOTO, analyze_photo
from fer_core.models.checkpoint import Checkpoint, load_checkpoint
from fer_core.models.predict import classify_faces
from fer_core.results.files import finite_or_none

PHOTO_SIDE = 1000  # the end-to-end photo: 1000 x 1000 px (1 MP), one face

#: ``progress(fraction, text)``: ``fraction`` in [0, 1] of the whole run, ``text`` says what is being timed.
Progress = Callable[[float, str], None]


# --- the machine and the inputs ------------------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict:
    """What the speed figures were measured on.

    Returns:
        ``cpu`` (model name from ``/proc/cpuinfo``, else :func:`platform.processor`), ``cpu_count``
        (logical cores, :func:`os.cpu_count`), ``threads`` (torch intra-op threads now),
        ``torch``, ``python`` (versions) and ``platform`` (:func:`platform.platform`).
    """
    return {"cpu": _cpu_name(), "cpu_count": os.cpu_count() or 0, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()}


def describe_machine(info: dict) -> str:
    """One line for a :func:`machine_info` dict: ``AMD EPYC, 2 cores, 1 torch thread, torch 2.13.0+cpu``."""
    threads = int(finite_or_none(info.get("threads")) or 0)
    cores = int(finite_or_none(info.get("cpu_count")) or 0)
    return (f"{info.get('cpu') or 'unknown CPU'}, {cores} core{'s' * (cores != 1)}, "
            f"{threads} torch thread{'s' * (threads != 1)}, torch {info.get('torch') or '?'}")


def measured_on(speed_rows: Iterable[dict]) -> list[tuple[str, str, str]]:
    """The distinct ``(machine, date, command)`` of speed-CSV rows (:func:`fer_core.results.files.read_speed`),
    sorted: :func:`describe_machine`, the ``measured`` date (``YYYY-MM-DD``) and the ``command``."""
    return sorted({(describe_machine(r), (r.get("measured") or "")[:10], r.get("command") or "") for r in speed_rows})


def _jpeg(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def benchmark_photo(side: int = PHOTO_SIDE) -> bytes:
    """JPEG bytes of the shipped sample portrait (public domain, one face) resized to ``side x side`` px."""
    return _jpeg(Image.fromarray(load_image(SAMPLE_PHOTO)).resize((side, side), Image.BICUBIC))


def group_photo() -> bytes:
    """JPEG bytes of a 4000 x 3000 px (12 MP) photo with ten faces cut from the sample portrait."""
    portrait = Image.fromarray(load_image(SAMPLE_PHOTO))
    face = portrait.crop((110, 10, 340, 260)).resize((330, 360), Image.BICUBIC)
    canvas = Image.new("RGB", (4000, 3000), (190, 195, 200))
    for i in range(10):
        tile = face if i % 2 else face.transpose(Image.FLIP_LEFT_RIGHT)
        canvas.paste(tile, (150 + (i % 5) * 760, 500 + (i // 5) * 1200))
    return _jpeg(canvas)


# --- timing --------------------------------------------------------------------------------------------------------


def timed_runs(fn: Callable[[], object], budget_s: float, tick: Callable[[float], None] | None = None) -> list[float]:
    """Call ``fn`` once to warm up, then repeatedly until ``budget_s`` seconds have passed since the start
    (warm-up included); always at least one timed call.

    Args:
        fn: the work to time (no arguments).
        budget_s: seconds (> 0). The loop ends after the call that crosses it, so it overruns by at
            most one call.
        tick: called with the share of the budget used so far (0-1), at most ~10 times a second.

    Returns:
        The timed calls' wall times in seconds (``time.perf_counter``), in order.
    """
    start = time.perf_counter()
    fn()
    times: list[float] = []
    last_tick = start
    while True:
        t = time.perf_counter()
        fn()
        now = time.perf_counter()
        times.append(now - t)
        if now - start >= budget_s:
            break
        if tick is not None and now - last_tick >= 0.1:
            tick((now - start) / budget_s)
            last_tick = now
    return times


def _stage_ticker(progress: Progress, i: int, n: int, text: str) -> Callable[[float], None]:
    """``tick(f)`` for stage ``i`` of ``n``: reports ``(i + f) / n`` of the run to ``progress``."""
    progress(i / n, text)
    return lambda f: progress((i + min(f, 1.0)) / n, text)


def _check_budget(budget_s: float, threads: int) -> None:
    b = finite_or_none(budget_s)
    if b is None or b <= 0:
        raise ValueError(f"budget_s must be a positive number of seconds, got {budget_s!r}")
    if int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")


def measure_model(
    checkpoint: Checkpoint | str | os.PathLike | None,
    budget_s: float = 3.0,
    threads: int = 1,
    progress: Progress | None = None,
    detector=None,
    photo: bytes | None = None,
) -> dict:
    """Inference speed of one checkpoint on this machine, bounded in time.

    Three measurements share ``budget_s`` equally; each warms up once, then repeats its work until its
    share is spent (see :func:`timed_runs`) and reports the median:

    * ``faces_per_s_batch1``: :func:`fer_core.models.predict.classify_faces` on one aligned ``uint8 48x48``
      face (preprocessing, forward pass, softmax, the record), faces per second;
    * ``faces_per_s_batch64``: the same on a batch of 64 faces;
    * ``photo_ms``: :func:`fer_core.inference.pipeline.analyze_photo` on the JPEG bytes of a 1 MP photo with one
      face (decode, YuNet detection, alignment, classification, annotation), milliseconds.

    Args:
        checkpoint: a loaded :class:`fer_core.models.checkpoint.Checkpoint` (not modified), a checkpoint
            folder or name, or None for the shipped default.
        budget_s: seconds for the three measurements together (> 0); the run takes about this long
            plus three warm-up calls and at most one extra call per measurement.
        threads: torch intra-op threads during the run (>= 1); the previous setting is restored.
            The app uses 1, so one session's benchmark leaves the other core(s) to the others.
        progress: optional ``progress(fraction, text)`` callback (fraction in [0, 1]).
        detector: a :class:`fer_core.inference.detect.FaceDetector` (default: a new YuNet one).
        photo: JPEG/PNG bytes for the end-to-end figure (default :func:`benchmark_photo`).

    Returns:
        ``model`` (card name), the :data:`fer_core.results.files.FIGURES` (floats > 0),
        ``faces_in_photo`` (faces found in the photo), ``runs`` ({figure: timed calls}), ``budget_s``,
        ``threads`` and ``seconds`` (wall time of the whole measurement).

    Raises:
        ValueError: ``budget_s`` is not a positive number or ``threads`` not a whole number >= 1.
        fer_core.models.checkpoint.CheckpointError: ``checkpoint`` cannot be loaded.
    """
    _check_budget(budget_s, threads)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if detector is None:
        detector = FaceDetector("yunet")
    photo = benchmark_photo() if photo is None else photo
    faces = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    found: dict = {}

    def photo_once() -> None:
        found["faces"] = len(analyze_photo(photo, "benchmark.jpg", ckpt, detector).records)

    stages = (
        ("faces_per_s_batch1", "classifier, batch 1", lambda: classify_faces(ckpt, faces[:1], batch_size=1)),
        ("faces_per_s_batch64", "classifier, batch 64", lambda: classify_faces(ckpt, faces, batch_size=64)),
        ("photo_ms", "1 MP photo end to end", photo_once),
    )
    share = float(budget_s) / len(stages)
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    out: dict = {"model": ckpt.name}
    runs: dict = {}
    start = time.perf_counter()
    try:
        for i, (key, what, fn) in enumerate(stages):
            tick = None if progress is None else _stage_ticker(progress, i, len(stages), f"{ckpt.name}: {what}")
            times = timed_runs(fn, share, tick)
            med = statistics.median(times)
            runs[key] = len(times)
            out[key] = 1000 * med if key == "photo_ms" else (1 if key.endswith("batch1") else 64) / med
    finally:
        torch.set_num_threads(previous)
    out["faces_in_photo"] = found["faces"]
    if progress is not None:
        progress(1.0, f"{ckpt.name}: done")
    out.update(runs=runs, budget_s=float(budget_s), threads=int(threads), seconds=time.perf_counter() - start)
    return out


def measure_models(
    checkpoints: Iterable[Checkpoint | str | os.PathLike | None],
    budget_s: float = 3.0,
    threads: int = 1,
    progress: Progress | None = None,
    detector=None,
) -> list[dict]:
    """:func:`measure_model` for each checkpoint in turn (``budget_s`` each); ``progress`` covers the whole run.

    Raises:
        ValueError, fer_core.models.checkpoint.CheckpointError: as :func:`measure_model` (checked before any
            timing starts).
    """
    _check_budget(budget_s, threads)
    ckpts = [c if isinstance(c, Checkpoint) else load_checkpoint(c) for c in checkpoints]
    if detector is None:
        detector = FaceDetector("yunet")
    photo = benchmark_photo()
    n = max(1, len(ckpts))
    results = []
    for k, ckpt in enumerate(ckpts):
        sub = None if progress is None else (lambda f, t, k=k: progress((k + f) / n, t))
        results.append(measure_model(ckpt, budget_s, threads, sub, detector=detector, photo=photo))
    return results
