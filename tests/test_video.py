"""Video pipeline: in-memory decode, tracking, timeline, annotated MP4, limits and bad files."""

import io

import av
import numpy as np
import pytest
from PIL import Image

from fer_core.data.images import load_image
from fer_core.inference.detect import FaceDetector
from fer_core.inference.pipeline import SAMPLE_PHOTO
from fer_core.inference.video import VideoError, analyze_video, encode_frames, summarize_timeline


def clip(n=12, size=320, codec="libx264", fmt="mp4"):
    a = Image.fromarray(load_image(SAMPLE_PHOTO)).resize((size, size))
    frames = [np.asarray(a.rotate(i * 2)) for i in range(n)]
    return encode_frames(frames, fps=10, codec=codec, fmt=fmt)


@pytest.mark.parametrize("codec, fmt", [("libx264", "mp4"), ("libvpx", "webm"), ("mpeg4", "avi")])
def test_analyze_clip(random_ckpt, codec, fmt):
    progress = []
    res = analyze_video(clip(codec=codec, fmt=fmt), random_ckpt, FaceDetector(), every_n=3, progress=progress.append)
    assert res.frames == 12 and res.frames_analyzed == 4 and res.fps == pytest.approx(10)
    assert len(res.timeline) == 4 and {r["track"] for r in res.timeline} == {1}  # one face, one track
    assert [r["frame"] for r in res.timeline] == [0, 3, 6, 9]
    assert progress[-1] == 1.0
    with av.open(io.BytesIO(res.video)) as out:  # the annotated video is a real H.264 MP4
        s = out.streams.video[0]
        assert s.codec_context.name == "h264"
        assert sum(1 for _ in out.decode(s)) == 12
    summary = res.summary()
    assert summary["dominant_track"] == 1 and sum(summary["tracks"][1]["share"].values()) == pytest.approx(1)


def test_tracks_follow_two_faces():
    timeline = [{"t": 0, "track": 1, "label": "sad", "negative": True}, {"t": 0, "track": 2, "label": "happy",
                "negative": False}, {"t": 1, "track": 1, "label": "happy", "negative": False}]
    s = summarize_timeline(timeline)
    assert s["dominant_track"] == 1
    assert s["tracks"][1] == {"frames": 2, "share": {"sad": 0.5, "happy": 0.5}, "negative_share": 0.5}


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"definitely not a video" * 50, "not a video"),
])
def test_unreadable_videos(random_ckpt, data, message):
    with pytest.raises(VideoError, match=message):
        analyze_video(data, random_ckpt, FaceDetector())


def test_truncated_video(random_ckpt):
    data = clip(n=30)
    with pytest.raises(VideoError):
        analyze_video(data[: len(data) // 3], random_ckpt, FaceDetector())


def test_limits(random_ckpt):
    data = clip()
    with pytest.raises(VideoError, match="limit is 0 MB"):
        analyze_video(data, random_ckpt, FaceDetector(), max_bytes=100)
    with pytest.raises(VideoError, match="the limit is 0.5 s"):
        analyze_video(data, random_ckpt, FaceDetector(), max_duration_s=0.5)


def test_image_file_is_not_a_video(random_ckpt):
    with pytest.raises(VideoError):
        analyze_video(SAMPLE_PHOTO.read_bytes()[:2000], random_ckpt, FaceDetector())
