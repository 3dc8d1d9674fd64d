"""``python -m fer_core predict`` on a 20 s 640x360 clip with its default settings, on an idle machine and with
another process spinning a core.

    python benchmarks/bench_predict.py [--json] [--checkpoint NAME] [--seconds 20] [--repeat 3]

The clip (25 fps, one moving face made from the shipped sample portrait) is encoded in memory and written to a
temporary file, because ``predict`` reads files. For each condition (``idle``, ``loaded``: a second Python process
busy-looping on one core for the whole measurement) it reports

* ``analysis_s``: the median over ``--repeat`` runs of the analysis alone, timed in a fresh child process that
  sets up exactly what ``predict`` does with its defaults (threads, runtime, ``--every``, detector, read from
  ``predict``'s own parser) and times the ``analyze_video`` call it makes, from the file's bytes to the records;
* ``command_s``: the wall time of the whole ``python -m fer_core predict CLIP --json`` (start-up, imports and the
  model's ONNX export included), median over the same runs;
* ``records``: face records the command printed (every 5th frame with one face: ~100 for 20 s).

The issue's bar: ``analysis_s`` under 2 s, idle and loaded, on one core with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere


def make_clip(seconds: float, fps: int = 25, size: tuple[int, int] = (640, 360)) -> bytes:
    """An MP4 (H.264) of ``seconds`` at ``fps`` with one moving face, ``size`` = (width, height), in memory."""
    from fer_core.inference.scenes import face_clip
    from fer_core.inference.video import encode_frames

    return encode_frames(face_clip(1, int(round(seconds * fps)), size), fps=fps)


def child(clip: str, checkpoint: str | None) -> dict:
    """In a fresh process: what ``predict`` does with its defaults, timing its ``analyze_video`` call."""
    from fer_core.cli import build_parser
    from fer_core.inference.detect import FaceDetector
    from fer_core.inference.runtime import fast, set_inference_threads
    from fer_core.inference.video import analyze_video
    from fer_core.models.checkpoint import load_checkpoint

    a = build_parser().parse_args(["predict", clip] + (["--checkpoint", checkpoint] if checkpoint else []))
    set_inference_threads(a.threads)
    ck = fast(load_checkpoint(a.checkpoint), a.runtime, threads=max(a.threads, 1))
    detector = FaceDetector(a.detector, threads=max(a.threads, 1))
    data = Path(clip).read_bytes()
    t = time.perf_counter()
    res = analyze_video(data, ck, detector, every_n=a.every, blur=True, encode=bool(a.blur))
    return {"analysis_s": time.perf_counter() - t, "frames": res.frames, "frames_analyzed": res.frames_analyzed,
            "records": len(res.timeline), "threads": a.threads, "runtime": a.runtime, "every": a.every,
            "model": ck.name, "onnx": type(ck.model).__name__ == "OnnxModule", "detector_runtime": detector.runtime}


def _spinner() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def measure(clip: str, checkpoint: str | None, repeat: int) -> dict:
    analysis, command, info = [], [], {}
    cmd = [sys.executable, "-m", "fer_core", "predict", clip, "--json"] + (["--checkpoint", checkpoint]
                                                                          if checkpoint else [])
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--child", clip] + (["--checkpoint", checkpoint]
                             if checkpoint else []), capture_output=True, text=True, check=True, cwd=REPO)
        info = json.loads(out.stdout.strip().splitlines()[-1])
        analysis.append(info.pop("analysis_s"))
        t = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
        command.append(time.perf_counter() - t)
        info["command_records"] = len(json.loads(run.stdout))
    return {"analysis_s": round(statistics.median(analysis), 3), "analysis_runs_s": [round(v, 3) for v in analysis],
            "command_s": round(statistics.median(command), 3), **info}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="model (default: predict's default, the shipped model)")
    p.add_argument("--seconds", type=float, default=20.0, help="clip length")
    p.add_argument("--repeat", type=int, default=3, help="runs per condition (medians are reported)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--child", metavar="CLIP", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.checkpoint)))
        return 0
    from fer_core.results.speed import machine_info

    with tempfile.TemporaryDirectory() as d:
        clip = os.path.join(d, "clip.mp4")
        Path(clip).write_bytes(make_clip(a.seconds))
        results = {"idle": measure(clip, a.checkpoint, a.repeat)}
        spinner = _spinner()
        try:
            results["loaded"] = measure(clip, a.checkpoint, a.repeat)
        finally:
            spinner.kill()
            spinner.wait()
    out = {"machine": machine_info(), "clip": f"{a.seconds:g} s, 640x360, 25 fps, one face", **results}
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['machine']['cpu']}; clip {out['clip']}; predict defaults: threads {results['idle']['threads']}, "
          f"runtime {results['idle']['runtime']} (detector {results['idle']['detector_runtime']}), every "
          f"{results['idle']['every']}th frame")
    for k, r in results.items():
        print(f"  {k:<7} analysis {r['analysis_s']:.2f} s (runs {r['analysis_runs_s']}), whole command "
              f"{r['command_s']:.2f} s, {r['frames_analyzed']} of {r['frames']} frames, {r['records']} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
