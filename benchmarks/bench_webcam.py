"""Live webcam speed on this machine: 640x480 frames with 1, 3 and 10 real faces through the Webcam page's
``video_frame_callback`` (:meth:`fer_core.inference.live.LiveAnalyzer.callback`: decode to RGB, detect every n-th
frame and follow faces by optical flow in between, classify in a batch, draw, queue the result).

    python benchmarks/bench_webcam.py [--seconds 10] [--detect-every 3] [--detector-side 320] [--json]

Frames are YUV 4:2:0 ``av.VideoFrame`` objects, as WebRTC delivers them, made from the shipped sample
portrait by :func:`fer_core.inference.scenes.face_clip` (faces drifting ~1 px per frame); frames are fed back to
back, so FPS is the most the callback can sustain on one core (a camera sends 30). The model runs as the page
runs it (:func:`fer_core.inference.runtime.fast`, ONNX Runtime), YuNet too, and the page's limit of
:data:`~fer_core.inference.live.MAX_LIVE_FACES` faces holds. Figures, per case,
after a warm-up of 15 frames:

  fps_1face, fps_3faces, fps_10faces   frames processed per second
  p50_ms_*, p95_ms_*                   per-frame latency percentiles (ms)
  faces_per_frame_*                    mean faces reported per frame (1, 3 and 10 expected)

``--json`` prints one JSON object. ``load_avg`` is the 1-minute load average before each case: figures
taken while other jobs share the CPU are low.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from fer_core.inference.detect import FaceDetector
from fer_core.inference.live import DETECT_EVERY, LIVE_DETECTOR_SIDE, LiveAnalyzer
from fer_core.inference.runtime import RUNTIMES, fast
from fer_core.inference.scenes import face_clip
from fer_core.models.checkpoint import load_checkpoint


def run_case(n_faces: int, ckpt, detector, seconds: float, detect_every: int, classify_every: int) -> dict:
    frames = [av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p") for f in face_clip(n_faces, 90)]
    an = LiveAnalyzer(ckpt, detector, detect_every=detect_every, classify_every=classify_every)
    for f in frames[:15]:  # warm-up
        an.callback(f)
    an.reset()
    load = os.getloadavg()[0]
    lat, faces = [], []
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        an.callback(frames[i % len(frames)])
        lat.append(1000 * (time.perf_counter() - t))
        faces.append(len(an.results.get_nowait()["faces"]))
        i += 1
    elapsed = time.perf_counter() - start
    return {"fps": round(i / elapsed, 1), "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p95_ms": round(float(np.percentile(lat, 95)), 1), "faces_per_frame": round(float(np.mean(faces)), 2),
            "frames": i, "load_avg": round(load, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--seconds", type=float, default=10.0, help="per case")
    p.add_argument("--detect-every", type=int, default=DETECT_EVERY)
    p.add_argument("--classify-every", type=int, default=1)
    p.add_argument("--detector-side", type=int, default=LIVE_DETECTOR_SIDE, help="longest side the detector sees")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the app uses 1)")
    p.add_argument("--runtime", choices=RUNTIMES, default="onnx", help="classifier runtime (the app's: onnx)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ckpt = fast(load_checkpoint(a.checkpoint), a.runtime, threads=a.threads)  # what the Webcam page runs
    detector = FaceDetector("yunet", max_side=a.detector_side, threads=a.threads)
    cases = {n: run_case(n, ckpt, detector, a.seconds, a.detect_every, a.classify_every) for n in (1, 3, 10)}
    out = {}
    for n, case in cases.items():
        tag = f"{n}face" + ("s" if n > 1 else "")
        out.update({f"{key}_{tag}": case[key] for key in ("fps", "p50_ms", "p95_ms", "faces_per_frame", "frames")})
    out.update({
        "load_avg": [case["load_avg"] for case in cases.values()],
        "detect_every": a.detect_every, "classify_every": a.classify_every, "detector_side": a.detector_side,
        "frame_size": "640x480", "model": ckpt.name, "threads": a.threads, "runtime": a.runtime,
        "detector_runtime": detector.runtime,
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
    })
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>22}: {v}")


if __name__ == "__main__":
    main()
