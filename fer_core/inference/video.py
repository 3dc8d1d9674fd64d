"""Video analysis in memory: decode with PyAV from bytes, analyse every n-th frame, track faces,
and encode an annotated H.264 MP4 back into bytes. No frame touches the disk.

Tracking is greedy IoU matching of boxes between analysed frames (:func:`fer_core.inference.tracking.assign_tracks`:
a face keeps its track id while its box overlaps the previous one by IoU >= 0.3), enough for the
per-face emotion timeline.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import cv2
import numpy as np

from fer_core.inference.detect import FaceDetector
from fer_core.inference.overlay import annotate
from fer_core.inference.pipeline import analyze_image
from fer_core.inference.tracking import assign_tracks
from fer_core.models.checkpoint import Checkpoint

MAX_BYTES = 200 * 1024 * 1024
MAX_DURATION_S = 120.0
OUTPUT_MAX_SIDE = 640


class VideoError(ValueError):
    """A video cannot be decoded, or is over the size/duration limits; the message says which."""


@dataclass
class VideoResult:
    """Outcome of :func:`analyze_video`.

    Attributes:
        timeline: one row per face per analysed frame: ``t`` (seconds), ``frame``, ``track``,
            ``label``, ``confidence``, ``negative`` and ``p_<emotion>`` probabilities.
        video: annotated MP4 (H.264) bytes, or None if encoding was not asked for.
        fps, duration_s, frames, frames_analyzed: what was decoded.
    """

    timeline: list[dict] = field(default_factory=list)
    video: bytes | None = None
    fps: float = 0.0
    duration_s: float = 0.0
    frames: int = 0
    frames_analyzed: int = 0

    def summary(self) -> dict:
        """Per-track and dominant-face summary: share of analysed frames in each emotion, negative share."""
        return summarize_timeline(self.timeline)


def summarize_timeline(timeline: list[dict]) -> dict:
    """``{"tracks": {id: {"frames", "share": {emotion: share}, "negative_share"}}, "dominant_track"}``.

    The dominant track is the face seen in the most analysed frames. Shares are in [0, 1].
    """
    tracks: dict[int, list[dict]] = {}
    for row in timeline:
        tracks.setdefault(row["track"], []).append(row)
    out = {}
    for tid, rows in tracks.items():
        counts = Counter(r["label"] for r in rows)
        out[tid] = {
            "frames": len(rows),
            "share": {k: v / len(rows) for k, v in counts.most_common()},
            "negative_share": sum(r["negative"] for r in rows) / len(rows),
        }
    dominant = max(out, key=lambda t: out[t]["frames"]) if out else None
    return {"tracks": out, "dominant_track": dominant}


def _resize_for_output(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = min(1.0, OUTPUT_MAX_SIDE / max(h, w))
    nw, nh = max(2, int(w * s) // 2 * 2), max(2, int(h * s) // 2 * 2)  # H.264 wants even sizes
    return cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA) if (nw, nh) != (w, h) else rgb


#: Longest side, in pixels, of the copy of a video frame that faces are detected on (the webcam's size too).
VIDEO_DETECT_SIDE = 320


def analyze_video(
    data: bytes,
    checkpoint: Checkpoint,
    detector: FaceDetector,
    every_n: int = 5,
    blur: bool = False,
    encode: bool = True,
    max_bytes: int = MAX_BYTES,
    max_duration_s: float = MAX_DURATION_S,
    progress: Callable[[float], None] | None = None,
    detect_side: int | None = None,
) -> VideoResult:
    """Analyse a video held in memory.

    Args:
        data: the file's bytes (mp4, mov, avi, webm, ... anything FFmpeg decodes).
        every_n: analyse one frame in ``every_n`` (>= 1); boxes are held in between.
        blur: blur faces in the output video.
        encode: produce the annotated MP4 (``VideoResult.video``).
        max_bytes, max_duration_s: refuse larger or longer videos.
        progress: called with the share done, in [0, 1].
        detect_side: faces are detected on a copy of each analysed frame whose longest side is at most
            ``max(detect_side, half the frame's)`` pixels (default :data:`VIDEO_DETECT_SIDE`, the webcam's size; the
            detector's own limit when smaller): YuNet's cost grows with the pixels, and halving a frame keeps every
            face of >= ~32 px findable (faces the 48x48 classifier can use). Crops are still cut from the full frame.

    Returns:
        :class:`VideoResult`.

    Raises:
        VideoError: over a limit, not a video, or undecodable.
    """
    if every_n < 1:
        raise ValueError("every_n must be >= 1")
    side = detect_side or VIDEO_DETECT_SIDE
    if len(data) > max_bytes:
        raise VideoError(f"the video is {len(data) / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    if len(data) == 0:
        raise VideoError("the file is empty")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise VideoError(f"not a video FFmpeg can read ({exc})") from exc
    out_buf = io.BytesIO()
    result = VideoResult()
    try:
        fmt = container.format.name
        if fmt == "image2" or fmt.endswith("_pipe"):
            raise VideoError(f"this is a still image ({fmt}), not a video: use the Photo page")
        if not container.streams.video:
            raise VideoError("the file has no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        duration = (
            float(stream.duration * stream.time_base) if stream.duration and stream.time_base
            else (container.duration / 1e6 if container.duration else None)
        )
        if duration is not None and duration > max_duration_s:
            raise VideoError(f"the video lasts {duration:.1f} s; the limit is {max_duration_s:g} s")
        total = int(stream.frames) or (int(duration * fps) if duration else 0)
        result.fps = fps
        writer = out_stream = None
        tracks: dict[int, list[int]] = {}
        next_id = 1
        held: list[dict] = []
        frame_detector: FaceDetector | None = None
        for i, frame in enumerate(container.decode(stream)):
            t = float(frame.time) if frame.time is not None else i / fps
            if t > max_duration_s:
                raise VideoError(f"the video is longer than the {max_duration_s:g} s limit")
            result.frames = i + 1
            if progress is not None and total:
                progress(min(1.0, (i + 1) / total))
            analysed = i % every_n == 0
            if not (analysed or encode):  # decoded (later frames depend on it), never converted to pixels
                continue
            rgb = frame.to_ndarray(format="rgb24")
            if analysed:
                if frame_detector is None:  # the frame size is known from the first frame on
                    frame_detector = detector.at_most(max(side, (max(rgb.shape[:2]) + 1) // 2))
                records = analyze_image(rgb, checkpoint, frame_detector)
                ids, next_id = assign_tracks(tracks, [r["box"] for r in records], next_id)
                tracks = {tid: r["box"] for tid, r in zip(ids, records, strict=True)}
                for tid, r in zip(ids, records, strict=True):
                    r["track"] = tid
                    result.timeline.append({
                        "t": round(t, 3), "frame": i, "track": tid, "box": r["box"], "label": r["label"],
                        "confidence": round(r["confidence"], 4), "negative": r["negative"],
                        **{f"p_{k}": round(v, 4) for k, v in r["probabilities"].items()},
                    })
                held = records
                result.frames_analyzed += 1
            if encode:
                shown = _resize_for_output(rgb)
                s = shown.shape[1] / rgb.shape[1]
                scaled = [{**r, "box": [int(round(v * s)) for v in r["box"]],
                           "label": f"#{r['track']} {r['label']}"} for r in held]
                shown = annotate(shown, scaled, blur=blur)
                if writer is None:
                    writer = av.open(out_buf, mode="w", format="mp4")
                    out_stream = writer.add_stream("libx264", rate=max(1, round(fps)))
                    out_stream.width, out_stream.height = shown.shape[1], shown.shape[0]
                    out_stream.pix_fmt = "yuv420p"
                    out_stream.options = {"preset": "veryfast", "crf": "26"}
                for packet in out_stream.encode(av.VideoFrame.from_ndarray(shown, format="rgb24")):
                    writer.mux(packet)
        if result.frames == 0:
            raise VideoError("no frame could be decoded")
        result.duration_s = result.frames / fps
        if writer is not None:
            for packet in out_stream.encode():
                writer.mux(packet)
            writer.close()
            result.video = out_buf.getvalue()
    except VideoError:
        raise
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise VideoError(f"the video could not be decoded ({exc})") from exc
    finally:
        container.close()
    if progress is not None:
        progress(1.0)
    return result


def encode_frames(frames: list[np.ndarray], fps: int = 10, codec: str = "libx264", fmt: str = "mp4") -> bytes:
    """Encode ``uint8 (H, W, 3)`` RGB frames (even sizes) into a video held in memory (tests, samples)."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        s = out.add_stream(codec, rate=fps)
        s.width, s.height = frames[0].shape[1], frames[0].shape[0]
        s.pix_fmt = "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return buf.getvalue()
