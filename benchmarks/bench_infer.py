"""Inference speed on this machine: end-to-end photo latency, detector latency, classifier throughput.

    python benchmarks/bench_infer.py [--checkpoint CKPT] [--threads 1] [--repeat 15] [--json]

Figures (medians over ``--repeat`` runs after a warm-up):
  ms_1mp_1face     JPEG bytes of a 1000x1000 photo with one face -> faces with emotions (decode included)
  ms_12mp_10faces  JPEG bytes of a 4000x3000 photo with ten faces -> faces with emotions (decode included)
  detector_ms      YuNet on the decoded 1 MP photo
  faces_per_s      classifier throughput on batches of 64 aligned 48x48 faces
The photos are made from the shipped sample portrait (public domain), by ``fer_core.results.speed`` (the
module behind ``python -m fer_core bench`` and the app's Benchmarks page, which time the classifier at
batch 1 and 64 and the 1 MP photo within a time budget for every model).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from fer_core.data.images import load_image
from fer_core.inference.detect import FaceDetector
from fer_core.inference.pipeline import analyze_photo
from fer_core.models.checkpoint import load_checkpoint
from fer_core.models.predict import classify_faces, compiled
from fer_core.results.speed import benchmark_photo, group_photo, machine_info


def median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the app uses 1)")
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the classifier first (one-off ~20-40 s; for long batch jobs)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ckpt = load_checkpoint(a.checkpoint)
    if a.compile:
        ckpt = compiled(ckpt)
    det = FaceDetector("yunet")
    one, twelve = benchmark_photo(), group_photo()
    n1 = len(analyze_photo(one, "1mp.jpg", ckpt, det).records)
    n10 = len(analyze_photo(twelve, "12mp.jpg", ckpt, det).records)
    rgb1 = load_image(one)
    faces = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    batch_ms = median_ms(lambda: classify_faces(ckpt, faces, batch_size=64), a.repeat)
    out = {
        "ms_1mp_1face": round(median_ms(lambda: analyze_photo(one, "1mp.jpg", ckpt, det), a.repeat), 1),
        "ms_12mp_10faces": round(median_ms(lambda: analyze_photo(twelve, "12mp.jpg", ckpt, det), a.repeat), 1),
        "detector_ms": round(median_ms(lambda: det.detect(rgb1), a.repeat), 1),
        "faces_per_s": round(64 / (batch_ms / 1000), 0),
        "faces_found": {"1mp": n1, "12mp": n10},
        "model": ckpt.name,
        "threads": a.threads,
        "compiled": a.compile,
        "cpu": machine_info()["cpu"],
        "torch": torch.__version__,
    }
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>16}: {v}")


if __name__ == "__main__":
    main()
