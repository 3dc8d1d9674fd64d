"""Live webcam analysis: one call per camera frame, fast enough for a laptop CPU, nothing stored.

:class:`LiveAnalyzer` holds a checkpoint, a face detector and a little state per face. For each
frame (:meth:`LiveAnalyzer.process`, or :meth:`LiveAnalyzer.callback` for streamlit-webrtc's
``video_frame_callback``):

1. every ``detect_every``-th frame the detector finds the faces (on a copy of at most
   ``detector.max_side`` pixels) and :func:`fer_core.inference.tracking.assign_tracks` keeps their ids; in
   between, each face's landmarks are followed with optical flow (:func:`fer_core.inference.tracking.move_face`)
   on a small grayscale copy, which costs a fraction of a millisecond;
2. every ``classify_every``-th frame all faces are aligned like FER2013's faces and classified in one
   batch, on one torch thread; each face's probabilities are smoothed over time (exponential moving
   average, weight ``smoothing`` on the past) so the label does not flicker;
3. boxes, labels and confidences are drawn (faces blurred if asked) on a copy of the frame;
4. a compact result (labels, probabilities, timings; no pixels) is put on a bounded queue that the
   page reads; when the page falls behind, the oldest results are dropped.

Privacy: frames live only for the duration of the call. Between frames the analyzer keeps the
previous frame's small grayscale copy (at most ``flow_side`` pixels wide, for optical flow) and each
face's box, landmarks and probabilities; :meth:`LiveAnalyzer.reset` drops them. Nothing is written
to disk or logs.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import av
import cv2
import numpy as np
import torch

from fer_core import NEGATIVE_EMOTIONS
from fer_core.inference.align import align_face
from fer_core.inference.detect import Face, FaceDetector
from fer_core.inference.overlay import annotate
from fer_core.inference.pipeline import face_fields
from fer_core.inference.tracking import assign_tracks, move_face
from fer_core.inference.video import summarize_timeline
from fer_core.models.checkpoint import Checkpoint
from fer_core.models.predict import face_probabilities

#: Longest side, in pixels, of the copy the live detector runs on (640x480 camera -> 320x240):
#: faces of ~40 px and more in the camera frame are found, in ~4 ms on one core (YuNet on ONNX Runtime).
LIVE_DETECTOR_SIDE = 320
#: Faces the webcam follows at most (the largest): the 10-face scene of ``benchmarks/bench_webcam.py``.
MAX_LIVE_FACES = 10
#: Detect faces on one frame in this many (optical flow follows them in between).
DETECT_EVERY = 3
#: Results kept for the page before the oldest are dropped (~2 s of video at 30 frames per second).
QUEUE_SIZE = 64


def put_latest(q: queue.Queue, item) -> None:
    """Put ``item`` on a bounded queue, dropping the oldest entries while it is full (never blocks)."""
    while True:
        try:
            q.put_nowait(item)
            return
        except queue.Full:
            try:
                q.get_nowait()
            except queue.Empty:
                pass


@dataclass
class LiveFrame:
    """What :meth:`LiveAnalyzer.process` returns for one frame.

    Attributes:
        annotated: ``uint8 (H, W, 3)`` RGB copy of the frame with boxes and labels (faces blurred if
            asked).
        records: one dict per face, largest first at detection: ``track`` (int id, stable while the
            face is followed), ``box`` ([x, y, w, h] pixels), ``score``, ``landmarks``, ``label``,
            ``confidence`` (0-1), ``probabilities`` ({class: probability}, smoothed), ``negative``.
        timings: milliseconds spent in ``detect``, ``track``, ``classify``, ``draw`` and ``total``.
        detected: whether the detector ran on this frame (else faces were followed by optical flow).
        result: the compact dict put on the queue (see :meth:`LiveAnalyzer.process`).
    """

    annotated: np.ndarray
    records: list[dict]
    timings: dict[str, float]
    detected: bool
    result: dict = field(default_factory=dict)


@dataclass
class _Track:
    id: int
    face: Face
    probs: np.ndarray | None = None  # smoothed probabilities, float64 (K,)


class LiveAnalyzer:
    """Per-session state of the live webcam pipeline (see the module docstring).

    Args:
        checkpoint: the emotion model (shared and read-only; its ``classes`` name the outputs, 7 for
            FER2013, 8 for FER+).
        detector: a :class:`fer_core.inference.detect.FaceDetector` (shared; thread-safe); for live video
            create it with ``max_side=LIVE_DETECTOR_SIDE``.
        detect_every: run the detector on one frame in this many (>= 1).
        classify_every: classify the faces on one frame in this many (>= 1); in between the last
            probabilities are kept.
        smoothing: weight of the past in each face's probability average, in [0, 1) (0 = none).
        blur: blur the faces in the returned frames.
        max_faces: follow at most this many faces (the largest).
        flow_side: longest side, in pixels, of the grayscale copy optical flow runs on.
        results: the queue compact results are put on; a new ``queue.Queue(QUEUE_SIZE)`` if None.
        threads: torch threads used by the calling thread (1: the CPU is shared with the server and
            other sessions).
        clock: returns seconds (tests may pass a fake clock).

    Thread safety: one instance serves one video stream. :meth:`configure` may be called from
    another thread (the Streamlit script) while frames are processed; both take a lock.

    Raises:
        ValueError: a setting is out of range.
    """

    def __init__(self, checkpoint: Checkpoint, detector: FaceDetector, *, detect_every: int = DETECT_EVERY,
                 classify_every: int = 1, smoothing: float = 0.5, blur: bool = False, max_faces: int = MAX_LIVE_FACES,
                 flow_side: int = 320, results: queue.Queue | None = None, threads: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self.results = results if results is not None else queue.Queue(maxsize=QUEUE_SIZE)
        self.max_faces = max_faces
        self.flow_side = flow_side
        self.threads = threads
        self._clock = clock
        self.checkpoint = checkpoint
        self.detector = detector
        self.detect_every = self.classify_every = 1
        self.smoothing = 0.0
        self.blur = blur
        self.configure(detect_every=detect_every, classify_every=classify_every, smoothing=smoothing)
        self.reset()

    def configure(self, *, checkpoint: Checkpoint | None = None, detector: FaceDetector | None = None,
                  detect_every: int | None = None, classify_every: int | None = None,
                  smoothing: float | None = None, blur: bool | None = None) -> None:
        """Change settings between frames (None keeps a setting). A new checkpoint (e.g. from the
        sidebar) restarts the probability averages, since its classes may differ.

        Raises:
            ValueError: ``detect_every`` or ``classify_every`` < 1, or ``smoothing`` outside [0, 1).
        """
        if detect_every is not None and detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        if classify_every is not None and classify_every < 1:
            raise ValueError(f"classify_every must be >= 1, got {classify_every}")
        if smoothing is not None and not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        with self._lock:
            if checkpoint is not None and checkpoint is not self.checkpoint:
                self.checkpoint = checkpoint
                for t in getattr(self, "_tracks", []):
                    t.probs = None
            if detector is not None:
                self.detector = detector
            if detect_every is not None:
                self.detect_every = detect_every
            if classify_every is not None:
                self.classify_every = classify_every
            if smoothing is not None:
                self.smoothing = smoothing
            if blur is not None:
                self.blur = blur

    def reset(self) -> None:
        """Forget every face, the previous frame's grayscale copy, the frame counter and the results
        still on the queue."""
        with self._lock:
            while True:
                try:
                    self.results.get_nowait()
                except queue.Empty:
                    break
            self._tracks: list[_Track] = []
            self._next_id = 1
            self._prev_small: np.ndarray | None = None
            self._frame = 0
            self._t0 = self._clock()
            self._stamps: collections.deque[float] = collections.deque(maxlen=31)

    def process(self, rgb: np.ndarray) -> LiveFrame:
        """Analyse one camera frame and put its compact result on :attr:`results`.

        Args:
            rgb: ``uint8 (H, W, 3)`` RGB frame (any size; 640x480 is typical).

        Returns:
            :class:`LiveFrame`. Its ``result`` (the queued dict) holds ``t`` (seconds since start or
            :meth:`reset`), ``frame`` (index), ``fps`` (frames per second over the last ~30 frames;
            None until two frames were seen), ``latency_ms`` (this frame's processing time),
            ``detected``, ``timings`` and ``faces``: per face ``track``, ``label``, ``confidence``,
            ``negative`` and ``probabilities``. No pixels.

        Raises:
            ValueError: ``rgb`` is not a ``uint8 (H, W, 3)`` array.
        """
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError("process() needs a uint8 (H, W, 3) RGB frame")
        with self._lock:
            return self._process(rgb)

    def _process(self, rgb: np.ndarray) -> LiveFrame:
        _use_threads(self.threads)
        clock = self._clock
        t_start = clock()
        h, w = rgb.shape[:2]
        s = min(1.0, self.flow_side / max(h, w))
        small_rgb = rgb if s == 1.0 else cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                                                    interpolation=cv2.INTER_AREA)
        small = cv2.cvtColor(small_rgb, cv2.COLOR_RGB2GRAY)
        timings = {"detect": 0.0, "track": 0.0, "classify": 0.0}
        detected = self._frame % self.detect_every == 0 or self._prev_small is None \
            or self._prev_small.shape != small.shape
        t = clock()
        if detected:
            faces = self.detector.detect(rgb)[: self.max_faces]
            previous = {tr.id: tr for tr in self._tracks}
            ids, self._next_id = assign_tracks({i: tr.face.box for i, tr in previous.items()},
                                               [f.box for f in faces], self._next_id)
            self._tracks = [_Track(i, f, previous[i].probs if i in previous else None)
                            for i, f in zip(ids, faces, strict=True)]
            timings["detect"] = clock() - t
        else:
            kept = []
            for tr in self._tracks:
                moved = move_face(tr.face, self._prev_small, small, s, (w, h))
                if moved is not None:
                    kept.append(_Track(tr.id, moved, tr.probs))
            self._tracks = kept
            timings["track"] = clock() - t
        self._prev_small = small

        names = self.checkpoint.classes
        pending = [tr for tr in self._tracks if tr.probs is None or len(tr.probs) != len(names)]
        to_classify = self._tracks if self._frame % self.classify_every == 0 else pending
        if to_classify:
            t = clock()
            crops = np.stack([align_face(rgb, tr.face) for tr in to_classify])  # (N, 48, 48)
            for tr, p in zip(to_classify, face_probabilities(self.checkpoint, crops).astype(np.float64), strict=True):
                if tr.probs is not None and len(tr.probs) == len(p):
                    p = self.smoothing * tr.probs + (1.0 - self.smoothing) * p
                tr.probs = p
            timings["classify"] = clock() - t

        records = []
        for tr in self._tracks:
            k = int(tr.probs.argmax())
            records.append({
                "track": tr.id, **face_fields(tr.face), "label": names[k], "confidence": float(tr.probs[k]),
                "probabilities": {n: float(v) for n, v in zip(names, tr.probs, strict=True)},
                "negative": names[k] in NEGATIVE_EMOTIONS,
            })
        t = clock()
        annotated = annotate(rgb, [{**r, "label": f"#{r['track']} {r['label']}"} for r in records], blur=self.blur)
        t_end = clock()
        timings["draw"] = t_end - t
        timings["total"] = t_end - t_start
        timings = {k: round(1000 * v, 2) for k, v in timings.items()}

        self._stamps.append(t_end)
        span = self._stamps[-1] - self._stamps[0]
        fps = (len(self._stamps) - 1) / span if len(self._stamps) > 1 and span > 0 else None
        result = {
            "t": round(t_end - self._t0, 3), "frame": self._frame, "fps": None if fps is None else round(fps, 1),
            "latency_ms": timings["total"], "detected": detected, "timings": timings,
            "faces": [{k: r[k] for k in ("track", "label", "confidence", "negative", "probabilities")}
                      for r in records],
        }
        self._frame += 1
        put_latest(self.results, result)
        return LiveFrame(annotated, records, timings, detected, result)

    def callback(self, frame):
        """streamlit-webrtc's ``video_frame_callback``: ``av.VideoFrame`` in, annotated ``av.VideoFrame`` out.

        Runs in the stream's worker thread and touches no Streamlit API. If the analysis fails, the
        frame is passed through unchanged and ``{"error": message}`` is put on :attr:`results` so the
        page can show it.
        """

        rgb = frame.to_ndarray(format="rgb24")
        try:
            out = self.process(rgb)
        except Exception as exc:  # a live stream must not die on one bad frame; the page shows the error
            put_latest(self.results, {"error": f"{type(exc).__name__}: {exc}"})
            return frame
        new = av.VideoFrame.from_ndarray(out.annotated, format="rgb24")
        new.pts = frame.pts
        if frame.time_base is not None:
            new.time_base = frame.time_base
        return new


def _use_threads(n: int) -> None:

    if torch.get_num_threads() != n:  # the setting is per OS thread for OpenMP: set it where the model runs
        torch.set_num_threads(n)


class LiveTimeline:
    """The page's view of the queue: recent results, turned into timeline rows and readouts.

    Args:
        window_s: keep results of the last this many seconds (by their ``t``).
        max_results: keep at most this many results.

    Rows have :func:`fer_core.inference.video.summarize_timeline`'s and :func:`fer_core.app.plots.timeline_figure`'s
    layout: ``t``, ``track``, ``label``, ``confidence``, ``negative`` and ``p_<class>`` per face.
    """

    def __init__(self, window_s: float = 30.0, max_results: int = 3000) -> None:
        self.window_s = window_s
        self._results: collections.deque[dict] = collections.deque(maxlen=max_results)
        self.error: str | None = None

    def add(self, result: Mapping) -> None:
        """Add one result from :meth:`LiveAnalyzer.process` (or an ``{"error": ...}`` item)."""
        if "error" in result:
            self.error = str(result["error"])
            return
        self.error = None
        if self._results and result["t"] < self._results[-1]["t"]:  # the analyzer was reset: start over
            self._results.clear()
        self._results.append(dict(result))
        while self._results and self._results[-1]["t"] - self._results[0]["t"] > self.window_s:
            self._results.popleft()

    def drain(self, q: queue.Queue, timeout: float = 0.0) -> int:
        """Move every result waiting on ``q`` here; wait up to ``timeout`` seconds for the first one.

        Returns:
            How many items were taken.
        """
        n = 0
        try:
            item = q.get(timeout=timeout) if timeout > 0 else q.get_nowait()
            while True:
                self.add(item)
                n += 1
                item = q.get_nowait()
        except queue.Empty:
            return n

    def summary(self) -> dict:
        """:func:`fer_core.inference.video.summarize_timeline` of :meth:`rows` (per-track emotion shares and the
        dominant track, the face seen in the most results)."""

        return summarize_timeline(self.rows())

    def clear(self) -> None:
        """Forget every result."""
        self._results.clear()
        self.error = None

    @property
    def latest(self) -> dict | None:
        """The newest result, or None."""
        return self._results[-1] if self._results else None

    def rows(self) -> list[dict]:
        """One row per face per result in the window."""
        return [{"t": r["t"], "frame": r["frame"], "track": f["track"], "label": f["label"],
                 "confidence": f["confidence"], "negative": f["negative"],
                 **{f"p_{k}": v for k, v in f["probabilities"].items()}}
                for r in self._results for f in r["faces"]]

    def readouts(self) -> dict:
        """Figures for the page: ``fps`` (newest), ``latency_ms_p50`` and ``latency_ms_p95`` (over the
        last 30 results), ``faces`` (newest result's faces), ``negative`` (those of them whose label
        is negative), ``frames`` (results in the window). Empty values when there is no result."""
        recent = list(self._results)[-30:]
        lat = [r["latency_ms"] for r in recent]
        latest = self.latest or {"fps": None, "faces": []}
        return {
            "fps": latest["fps"],
            "latency_ms_p50": float(np.percentile(lat, 50)) if lat else None,
            "latency_ms_p95": float(np.percentile(lat, 95)) if lat else None,
            "faces": latest["faces"],
            "negative": [f for f in latest["faces"] if f["negative"]],
            "frames": len(self._results),
        }








def compact_faces_text(faces: Sequence[dict]) -> str:
    """``#1 happy 93% · #2 sad 61%`` for a result's faces (empty string when there is none)."""
    return " · ".join(f"#{f['track']} {f['label']} {100 * f['confidence']:.0f}%" for f in faces)
