"""Inference privacy: analysing a photo or a video writes nothing to disk.

Two independent checks: a Python audit hook records every ``open()`` for writing made while the
pipeline runs, and the files under the temp dir, the working dir and the home dir are snapshotted
(path, size, mtime) before and after (this also sees writes from C code: FFmpeg, OpenCV).
"""

import os
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from fer_core.data.images import load_image
from fer_core.inference.detect import FaceDetector
from fer_core.inference.pipeline import SAMPLE_PHOTO, analyze_photo, records_to_csv, records_to_json
from fer_core.inference.video import analyze_video, encode_frames

_WRITES: list[str] = []
_ACTIVE = [False]
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _audit(event, args):
    if _ACTIVE[0] and event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writing:
            _WRITES.append(str(path))


sys.addaudithook(_audit)  # cannot be removed; inert unless _ACTIVE


def _snapshot() -> dict[str, tuple[int, float]]:
    roots = [Path(tempfile.gettempdir()), Path.cwd(), Path.home()]
    # Not walked: interpreters and caches, and runs/ (a training job in the background writes there).
    skip = {".pyenv", ".cache", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "node_modules", "runs"}
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in skip]
            for f in filenames:
                p = os.path.join(dirpath, f)
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                out[p] = (st.st_size, st.st_mtime)
    return out


class NoWrites:
    def __enter__(self):
        _WRITES.clear()
        self.before = _snapshot()
        _ACTIVE[0] = True
        return self

    def __exit__(self, *exc):
        _ACTIVE[0] = False
        after = _snapshot()
        changed = sorted(p for p, v in after.items() if self.before.get(p) != v)
        assert not _WRITES, f"files opened for writing: {_WRITES}"
        assert not changed, f"files created or modified: {changed[:10]}"


def test_photo_pipeline_writes_nothing(random_ckpt):
    detector = FaceDetector()
    data = SAMPLE_PHOTO.read_bytes()
    analyze_photo(data, "warm-up.jpg", random_ckpt, detector)  # lazy imports happen outside the check
    with NoWrites():
        res = analyze_photo(data, "me.jpg", random_ckpt, detector, blur=True)
        records_to_csv([res]), records_to_json([res])
    assert len(res.records) == 1


def test_video_pipeline_writes_nothing(random_ckpt):
    detector = FaceDetector()
    a = Image.fromarray(load_image(SAMPLE_PHOTO)).resize((256, 256))
    data = encode_frames([np.asarray(a.rotate(i)) for i in range(10)], fps=10)
    analyze_video(data, random_ckpt, detector, every_n=5)
    with NoWrites():
        res = analyze_video(data, random_ckpt, detector, every_n=2, blur=True)
    assert res.video and len(res.timeline) == 5


def test_live_pipeline_writes_nothing(random_ckpt):
    from fer_core.inference.live import LIVE_DETECTOR_SIDE, LiveAnalyzer
    from fer_core.inference.scenes import face_clip

    analyzer = LiveAnalyzer(random_ckpt, FaceDetector(max_side=LIVE_DETECTOR_SIDE), blur=True)
    frames = [av.VideoFrame.from_ndarray(f, format="rgb24") for f in face_clip(3, 6)]
    analyzer.callback(frames[0])
    with NoWrites():
        for f in frames:
            analyzer.callback(f)
    assert analyzer.results.qsize() == 7


def test_the_check_itself_catches_a_write(tmp_path):
    with pytest.raises(AssertionError, match="opened for writing"):
        with NoWrites():
            (tmp_path / "leak.png").write_bytes(b"x")
