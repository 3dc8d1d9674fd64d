"""Live webcam pipeline: optical-flow tracking between detections, the bounded result queue, no
frames kept, the streamlit-webrtc callback, the page's timeline and the STUN/TURN configuration."""

import json
import queue

import av
import cv2
import numpy as np
import pytest

from fer_core.app.webrtc import rtc_configuration
from fer_core.inference.detect import FaceDetector
from fer_core.inference.live import LIVE_DETECTOR_SIDE, LiveAnalyzer, LiveTimeline, put_latest
from fer_core.inference.scenes import face_clip, face_scene
from fer_core.inference.tracking import assign_tracks, iou, move_face
from fer_core.models.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(max_side=LIVE_DETECTOR_SIDE)


@pytest.fixture(scope="module")
def ferplus_ckpt(tmp_path_factory):
    """An untrained tiny 8-class checkpoint (FER+ classes, with contempt)."""
    import torch

    from fer_core.models.architectures import build_model, model_arguments

    torch.manual_seed(1)
    classes = ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt"]
    args = model_arguments("resnet", widths=[8, 16], blocks=[1, 1], stem=8, num_classes=8)
    d = tmp_path_factory.mktemp("ck8") / "ferplus"
    save_checkpoint(d, build_model("resnet", **args), {"arch": "resnet", "model_args": args, "classes": classes})
    return load_checkpoint(d)


def test_move_face_follows_a_known_shift(detector):
    frame = face_scene(1, 0)
    face = detector.detect(frame)[0]
    dx, dy = 7.0, -4.0
    shifted = cv2.warpAffine(frame, np.float32([[1, 0, dx], [0, 1, dy]]), (640, 480), borderMode=cv2.BORDER_REPLICATE)
    g0, g1 = (cv2.cvtColor(cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
              for f in (frame, shifted))
    moved = move_face(face, g0, g1, scale=0.5, image_size=(640, 480))
    assert moved is not None
    np.testing.assert_allclose(np.subtract(moved.box[:2], face.box[:2]), [dx, dy], atol=1.5)
    np.testing.assert_allclose(moved.box[2:], face.box[2:], atol=2)
    np.testing.assert_allclose(moved.landmarks - face.landmarks, np.tile([dx, dy], (5, 1)), atol=1.5)
    # a face on a blank frame cannot be followed: it is reported lost, not kept in place
    blank = np.full_like(g1, 128)
    assert move_face(face, g0, blank, scale=0.5) is None


def test_assign_tracks_keeps_ids_by_overlap():
    prev = {1: (0, 0, 10, 10), 2: (100, 100, 20, 20)}
    ids, nxt = assign_tracks(prev, [(102, 101, 20, 20), (300, 300, 5, 5), (1, 0, 10, 10)], next_id=3)
    assert ids == [2, 3, 1] and nxt == 4
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_the_crowd_scene_has_ten_faces_the_live_detector_finds(detector):
    for i in (0, 30, 60):
        assert len(detector.detect(face_scene(10, i))) == 10
    with pytest.raises(ValueError, match="1, 3, 10 faces"):
        face_scene(4)


def test_detects_every_nth_frame_and_tracks_in_between(random_ckpt, detector):
    an = LiveAnalyzer(random_ckpt, detector, detect_every=3)
    frames = face_clip(3, 9)
    outs = [an.process(f) for f in frames]
    assert [o.detected for o in outs] == [True, False, False] * 3
    assert all(o.timings["detect"] > 0 for o in outs[::3])
    assert all(o.timings["detect"] == 0 and o.timings["track"] > 0 for i, o in enumerate(outs) if i % 3)
    assert all(len(o.records) == 3 for o in outs)
    assert all({r["track"] for r in o.records} == {1, 2, 3} for o in outs)  # the same faces keep their ids
    for f, o in zip(frames, outs, strict=True):  # tracked boxes sit where the detector finds the faces
        fresh = [g.box for g in detector.detect(f)]
        assert all(max(iou(r["box"], b) for b in fresh) > 0.8 for r in o.records)
    # the boxes do move between detections (the faces drift), so tracking did not just hold them
    by_track = {r["track"]: r["box"] for r in outs[0].records}
    assert any(r["box"] != by_track[r["track"]] for r in outs[2].records)


def test_classify_every_and_smoothing(random_ckpt, detector):
    frames = face_clip(1, 4)
    every2 = LiveAnalyzer(random_ckpt, detector, smoothing=0.0, classify_every=2)
    outs = [every2.process(f) for f in frames]
    assert [o.timings["classify"] > 0 for o in outs] == [True, False, True, False]
    assert outs[1].records[0]["probabilities"] == outs[0].records[0]["probabilities"]  # kept in between

    def probs(smoothing):
        an = LiveAnalyzer(random_ckpt, detector, smoothing=smoothing)
        return [np.array(list(an.process(f).records[0]["probabilities"].values())) for f in frames]

    raw, smooth = probs(0.0), probs(0.8)
    np.testing.assert_allclose(smooth[0], raw[0])  # the first frame has no past
    # each smoothed frame is the running average 0.8 * past + 0.2 * this frame's own probabilities
    expected = raw[0]
    for k in range(1, len(frames)):
        expected = 0.8 * expected + 0.2 * raw[k]
        np.testing.assert_allclose(smooth[k], expected, rtol=1e-5)
    assert smooth[-1].sum() == pytest.approx(1.0)


def test_queue_is_bounded_and_drops_the_oldest(random_ckpt, detector):
    q = queue.Queue(maxsize=4)
    an = LiveAnalyzer(random_ckpt, detector, results=q)
    for f in face_clip(1, 10):
        an.process(f)
    assert q.qsize() == 4
    items = [q.get_nowait() for _ in range(4)]
    assert [it["frame"] for it in items] == [6, 7, 8, 9]
    put_latest(q, {"x": 1})  # never blocks, even on a full queue
    for i in range(10):
        put_latest(q, {"x": i})
    assert [q.get_nowait()["x"] for _ in range(4)] == [6, 7, 8, 9]


def _arrays(obj, seen=None):
    """Every numpy array reachable from obj through dicts, lists, tuples and object attributes."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, dict):
        items = list(obj.values())
    elif isinstance(obj, list | tuple | set) or type(obj).__name__ == "deque":
        items = list(obj)
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("fer_core"):
        items = list(vars(obj).values())
    else:
        return []
    return [a for it in items for a in _arrays(it, seen)]


def test_no_frames_kept(random_ckpt, detector):
    an = LiveAnalyzer(random_ckpt, detector)
    frames = face_clip(3, 8)
    for f in frames:
        an.process(f)
    # results hold no pixels: they are plain JSON
    items = [an.results.get_nowait() for _ in range(an.results.qsize())]
    assert len(items) == 8
    json.dumps(items)
    assert not _arrays(items)
    # the analyzer holds only the last frame's 320x240 grayscale copy (for optical flow) and the faces'
    # landmarks and probabilities -- never a colour frame or a frame at camera size
    state = {k: v for k, v in vars(an).items() if k not in ("checkpoint", "detector")}
    held = _arrays(state)
    assert max(a.size for a in held) == 320 * 240 and sum(a.size > 100 for a in held) == 1
    an.reset()
    state = {k: v for k, v in vars(an).items() if k not in ("checkpoint", "detector")}
    assert not _arrays(state)


def test_callback_av_frames_and_errors(random_ckpt, detector):
    an = LiveAnalyzer(random_ckpt, detector, blur=True)
    rgb = face_scene(1, 0)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")  # as WebRTC delivers
    frame.pts = 1234
    out = an.callback(frame)
    assert isinstance(out, av.VideoFrame) and (out.width, out.height) == (640, 480) and out.pts == 1234
    result = an.results.get_nowait()
    assert len(result["faces"]) == 1 and result["faces"][0]["label"] in random_ckpt.classes
    # blurred: the face region of the returned frame differs strongly from the input's
    x, y, w, h = detector.detect(rgb)[0].box
    back = out.to_ndarray(format="rgb24")
    assert np.abs(back[y + h // 4: y + 3 * h // 4, x + w // 4: x + 3 * w // 4].astype(int)
                  - rgb[y + h // 4: y + 3 * h // 4, x + w // 4: x + 3 * w // 4]).mean() > 5

    class Broken:
        def detect(self, rgb):
            raise RuntimeError("detector crashed")

    an.configure(detector=Broken(), detect_every=1)
    assert an.callback(frame) is frame  # passed through unchanged
    assert an.results.get_nowait() == {"error": "RuntimeError: detector crashed"}


def test_model_switch_uses_the_checkpoints_classes(random_ckpt, ferplus_ckpt, detector):
    an = LiveAnalyzer(random_ckpt, detector)
    frames = face_clip(1, 3)
    assert list(an.process(frames[0]).records[0]["probabilities"]) == random_ckpt.classes
    an.configure(checkpoint=ferplus_ckpt)  # from the sidebar, between two frames
    for f in frames[1:]:
        rec = an.process(f).records[0]
        assert list(rec["probabilities"]) == ferplus_ckpt.classes and len(rec["probabilities"]) == 8
        assert rec["label"] == max(rec["probabilities"], key=rec["probabilities"].get)
        assert rec["negative"] == (rec["label"] in {"angry", "disgust", "fear", "sad", "contempt"})
    with pytest.raises(ValueError, match="detect_every"):
        an.configure(detect_every=0)


def test_timeline_window_readouts_and_reset():
    tl = LiveTimeline(window_s=2.0)

    def item(t, frame, label, negative, lat=10.0):
        p_sad = 0.8 if negative else 0.2
        return {"t": t, "frame": frame, "fps": 20.0, "latency_ms": lat, "detected": True, "timings": {},
                "faces": [{"track": 1, "label": label, "confidence": 0.8, "negative": negative,
                           "probabilities": {"happy": 1 - p_sad, "sad": p_sad}}]}

    q = queue.Queue()
    for i in range(6):
        q.put(item(0.5 * i, i, "sad" if i == 5 else "happy", i == 5, lat=10.0 + i))
    assert tl.drain(q) == 6
    rows = tl.rows()
    assert [r["t"] for r in rows] == [0.5, 1.0, 1.5, 2.0, 2.5] and rows[-1]["p_sad"] == 0.8  # > 2 s old: dropped
    r = tl.readouts()
    assert r["fps"] == 20.0 and [f["label"] for f in r["negative"]] == ["sad"] and r["frames"] == 5
    assert r["latency_ms_p50"] == pytest.approx(13.0)
    assert tl.summary()["dominant_track"] == 1
    tl.add({"error": "boom"})
    assert tl.error == "boom"
    tl.add(item(0.1, 0, "happy", False))  # time went backwards: the analyzer was reset, start over
    assert len(tl.rows()) == 1 and tl.error is None


def test_rtc_configuration():
    assert rtc_configuration(env={}) == {"iceServers": []}
    env = {"FER_STUN_URLS": "stun:a.example:3478, stun:b.example:19302", "FER_TURN_URLS": "turn:t.example:3478",
           "FER_TURN_USERNAME": "u", "FER_TURN_CREDENTIAL": "p"}
    assert rtc_configuration(env=env)["iceServers"] == [
        {"urls": ["stun:a.example:3478", "stun:b.example:19302"]},
        {"urls": ["turn:t.example:3478"], "username": "u", "credential": "p"}]
    secrets = {"ice_servers": [{"urls": "stun:s.example:3478"}]}
    assert rtc_configuration(env={}, secrets=secrets) == {"iceServers": [{"urls": ["stun:s.example:3478"]}]}
    with pytest.raises(ValueError, match="username and a credential"):
        rtc_configuration(env={"FER_TURN_URLS": "turn:t.example:3478"})
    with pytest.raises(ValueError, match="must start with stun"):
        rtc_configuration(env={"FER_STUN_URLS": "http://x"})
    with pytest.raises(ValueError, match="no 'urls'"):
        rtc_configuration(env={}, secrets={"ice_servers": [{"username": "u"}]})


def test_process_rejects_non_frames(random_ckpt, detector):
    an = LiveAnalyzer(random_ckpt, detector)
    with pytest.raises(ValueError, match="uint8"):
        an.process(np.zeros((480, 640), np.uint8))
    assert an.process(np.zeros((480, 640, 3), np.uint8)).records == []  # no face: nothing, no error
