"""The command line, run as a user would (``python -m fer_core ...`` in a subprocess)."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, TINY_RESNET, make_faces, write_npz

from fer_core import EMOTIONS
from fer_core.data.preprocess import preprocessing_spec
from fer_core.models.architectures import build_model
from fer_core.models.checkpoint import save_checkpoint


def run(*args, env=None):
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "fer_core", *args], capture_output=True, text=True, cwd=REPO,
                          env=e, timeout=300)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck") / "tiny"
    torch.manual_seed(0)
    card = {"name": "tiny", "arch": "resnet", "model_args": TINY_RESNET, "classes": list(EMOTIONS),
            "preprocessing": preprocessing_spec(), "privacy": {"private": False}}
    save_checkpoint(d, build_model("resnet", **TINY_RESNET), card)
    return d


@pytest.mark.parametrize("cmd", ["train", "evaluate", "predict", "compare-archs", "report"])
def test_help(cmd):
    r = run(cmd, "--help")
    assert r.returncode == 0 and "usage: python -m fer_core " + cmd in r.stdout


def test_evaluate_json_on_split_npz(tiny_ckpt, tmp_path):
    data = write_npz(tmp_path / "d.npz")
    r = run("evaluate", "--checkpoint", str(tiny_ckpt), "--data", str(data), "--split", "PublicTest", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n"] == 64 and out["split"] == "PublicTest"
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "accuracy_dedup", "ece"} <= set(out)
    assert 0 <= out["accuracy"] <= 1
    assert sum(map(sum, out["confusion_matrix"])) == 64


def test_evaluate_generic_npz_all_rows_and_present_classes(tiny_ckpt, tmp_path):
    images, labels = make_faces(30, classes=3)  # only classes 0, 1, 2
    labels[:4] = -1
    np.savez(tmp_path / "g.npz", images=images, label=labels)
    r = run("evaluate", "--checkpoint", str(tiny_ckpt), "--data", str(tmp_path / "g.npz"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n"] == 26 and out["classes"] == ["angry", "disgust", "fear"]
    assert np.array(out["confusion_matrix"]).shape == (3, 3)


def test_evaluate_an_8_class_ferplus_model_on_a_generic_file_labelled_with_fer2013_ids(tmp_path):
    from fer_core import FERPLUS_EMOTIONS

    images, labels = make_faces(40, classes=7)  # FER2013 ids 0-6, no ferplus_votes in the file
    labels[:3] = -1
    np.savez(tmp_path / "g.npz", images=images, label=labels)
    r = run("evaluate", "--checkpoint", str(REPO / "checkpoints" / "ferplus_resnet"), "--data", str(tmp_path / "g.npz"),
            "--json", "--no-tta")
    assert r.returncode == 0, r.stderr
    assert "scored against the model's classes by name" in r.stderr
    out = json.loads(r.stdout)
    present = {EMOTIONS[i] for i in set(labels.tolist()) - {-1}}
    assert out["n"] == 37 and set(out["classes"]) == present and "contempt" not in out["classes"]
    assert set(out["classes"]) <= set(FERPLUS_EMOTIONS)
    # the labels were matched by name: a face labelled FER2013 "happy" (3) counts as FER+ "happy"
    assert out["per_class"]["happy"]["support"] == int((labels == EMOTIONS.index("happy")).sum())


def test_relabel_by_name_maps_fer2013_ids_onto_ferplus_classes(tmp_path):
    from fer_core import FERPLUS_EMOTIONS
    from fer_core.data.datasets import DatasetError, load_dataset
    from fer_core.data.ferplus import relabel_by_name

    ds = load_dataset(write_npz(tmp_path / "d.npz", 20, 5, 5))
    out = relabel_by_name(ds, "ferplus")
    ok = ds.labels >= 0
    assert [FERPLUS_EMOTIONS[j] for j in out.labels[ok]] == [EMOTIONS[i] for i in ds.labels[ok]]
    assert out.label_set == "ferplus" and relabel_by_name(out, "ferplus") is out
    with pytest.raises(DatasetError, match="unknown label set"):
        relabel_by_name(ds, "nope")


def test_evaluate_human_readable(tiny_ckpt, tmp_path):
    r = run("evaluate", "--checkpoint", str(tiny_ckpt), "--data", str(write_npz(tmp_path / "d.npz")))
    assert r.returncode == 0 and "accuracy" in r.stdout and "neutral" in r.stdout


def test_missing_dataset_is_one_clear_line(tiny_ckpt, tmp_path):
    r = run("evaluate", "--checkpoint", str(tiny_ckpt), "--data", str(tmp_path / "none.npz"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "dataset not found" in r.stderr and "Traceback" not in r.stderr
    r = run("evaluate", "--checkpoint", str(tiny_ckpt), env={"FER_DATA": str(tmp_path / "none.npz")})
    assert r.returncode == 2 and "none.npz" in r.stderr


def test_corrupt_checkpoint_is_one_clear_line(tiny_ckpt, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.json").write_text((tiny_ckpt / "model.json").read_text())
    (bad / "model.safetensors").write_bytes(b"garbage")
    r = run("evaluate", "--checkpoint", str(bad), "--data", str(write_npz(tmp_path / "d.npz")))
    assert r.returncode == 2 and "corrupt" in r.stderr and "Traceback" not in r.stderr


def test_predict_face_images(tiny_ckpt, tmp_path):
    images, _ = make_faces(2)
    cv2.imwrite(str(tmp_path / "a.png"), images[0])
    rgb = cv2.resize(cv2.cvtColor(images[1], cv2.COLOR_GRAY2BGR), (96, 96))
    cv2.imwrite(str(tmp_path / "b.jpg"), rgb)
    r = run("predict", str(tmp_path / "a.png"), str(tmp_path / "b.jpg"), "--checkpoint", str(tiny_ckpt), "--json",
            "--faces")
    assert r.returncode == 0, r.stderr
    recs = json.loads(r.stdout)
    assert [rec["file"] for rec in recs] == [str(tmp_path / "a.png"), str(tmp_path / "b.jpg")]
    for rec in recs:
        assert rec["label"] in EMOTIONS and sum(rec["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert rec["negative"] == (rec["label"] in {"angry", "disgust", "fear", "sad"})


def test_predict_compiled_gives_the_eager_probabilities(tiny_ckpt, tmp_path):
    images, _ = make_faces(3, seed=4)
    paths = []
    for i, img in enumerate(images):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), img)
        paths.append(str(tmp_path / f"f{i}.png"))
    plain = run("predict", *paths, "--checkpoint", str(tiny_ckpt), "--json", "--faces", "--threads", "1")
    fast = run("predict", *paths, "--checkpoint", str(tiny_ckpt), "--json", "--faces", "--threads", "1", "--compile")
    assert plain.returncode == 0 and fast.returncode == 0, fast.stderr[-2000:]
    for a, b in zip(json.loads(plain.stdout), json.loads(fast.stdout), strict=True):
        assert a["label"] == b["label"]
        for k in a["probabilities"]:
            assert a["probabilities"][k] == pytest.approx(b["probabilities"][k], abs=1e-4)


@pytest.mark.parametrize("name, content, message", [
    ("fake.jpg", b"this is text, not a JPEG", "not an image"),
    ("broken.mp4", b"\x00" * 500, "not a video"),
    ("tiny.png", None, None),
])
def test_predict_bad_inputs_exit_cleanly(tiny_ckpt, tmp_path, name, content, message):
    f = tmp_path / name
    if content is None:
        cv2.imwrite(str(f), np.zeros((1, 1, 3), np.uint8))  # a 1x1 image: valid, no face
    else:
        f.write_bytes(content)
    r = run("predict", str(f), "--checkpoint", str(tiny_ckpt), "--json")
    assert "Traceback" not in r.stderr
    if message is None:
        assert r.returncode == 0 and json.loads(r.stdout) == []
    else:
        assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1


def test_predict_photo_and_video_with_blur(tiny_ckpt, tmp_path):
    from PIL import Image

    from fer_core.data.images import load_image
    from fer_core.inference.pipeline import SAMPLE_PHOTO
    from fer_core.inference.video import encode_frames

    a = Image.fromarray(load_image(SAMPLE_PHOTO)).resize((256, 256))
    (tmp_path / "clip.mp4").write_bytes(encode_frames([np.asarray(a.rotate(i)) for i in range(10)], fps=10))
    out = tmp_path / "out"
    r = run("predict", str(SAMPLE_PHOTO), str(tmp_path / "clip.mp4"), "--checkpoint", str(tiny_ckpt), "--json",
            "--blur", str(out), "--every", "5")
    assert r.returncode == 0, r.stderr
    recs = json.loads(r.stdout)
    assert [rec["file"] for rec in recs] == [str(SAMPLE_PHOTO)] + [str(tmp_path / "clip.mp4")] * 2
    for rec in recs:
        assert len(rec["box"]) == 4 and rec["label"] in EMOTIONS and set(rec["probabilities"]) == set(EMOTIONS)
    assert [rec["t"] for rec in recs[1:]] == [0.0, 0.5]
    assert sorted(p.name for p in out.iterdir()) == ["astronaut_blurred.png", "clip_blurred.mp4"]


def test_train_cli_bad_model_args(tmp_path):
    r = run("train", "--out", str(tmp_path / "r"), "--model-args", "{oops")
    assert r.returncode != 0 and "not valid JSON" in r.stderr


def test_predict_errors_name_each_file(tiny_ckpt, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + (9000).to_bytes(4, "big") * 2
                    + b"\x08\x00\x00\x00\x00" + b"\x00" * 40)  # claims 9000x9000 (bad CRC: refused either way)
    files = {tmp_path / "empty.jpg": (b"", "the file is empty"),
             tmp_path / "fake.jpg": (b"this is text, not a JPEG", "not an image"),
             tmp_path / "empty.mp4": (b"", "the file is empty")}
    for f, (content, _) in files.items():
        f.write_bytes(content)
    r = run("predict", *map(str, files), str(big), str(tmp_path / "gone.png"), str(tmp_path),
            "--checkpoint", str(tiny_ckpt), "--json")
    assert r.returncode == 2 and "Traceback" not in r.stderr and json.loads(r.stdout) == []
    lines = r.stderr.splitlines()
    assert len(lines) == 6, r.stderr
    for line, (f, (_, reason)) in zip(lines, files.items(), strict=False):
        assert line.startswith(f"error: {f}: ") and reason in line, line
    assert lines[3].startswith(f"error: {big}: ")
    assert lines[4] == f"error: {tmp_path / 'gone.png'}: no such file"
    assert lines[5] == f"error: {tmp_path}: is a folder, not an image"


def test_predict_faces_errors_name_each_file(tiny_ckpt, tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    cv2.imwrite(str(tmp_path / "face.png"), np.full((48, 48), 128, np.uint8))
    r = run("predict", "--faces", str(tmp_path / "empty.png"), str(tmp_path / "face.png"),
            "--checkpoint", str(tiny_ckpt), "--json")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"error: {tmp_path / 'empty.png'}: the file is empty (not an image)"
    assert [rec["file"] for rec in json.loads(r.stdout)] == [str(tmp_path / "face.png")]
