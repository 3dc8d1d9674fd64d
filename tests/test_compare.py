"""Comparing two models (test split, photo), interpolating the sweep and planning a privacy budget."""

import math

import numpy as np
import pytest
import torch
from conftest import TINY_RESNET, write_npz

from fer_core import EMOTIONS
from fer_core.data.datasets import DatasetError, load_dataset
from fer_core.data.images import ImageError
from fer_core.evaluation.compare import (
    compare_on_split,
    compare_photo,
    compare_photo_annotated,
    example_faces,
    photo_table,
)
from fer_core.evaluation.metrics import classification_report
from fer_core.inference.detect import FaceDetector
from fer_core.inference.pipeline import SAMPLE_PHOTO, analyze_image
from fer_core.privacy.accounting import PrivacyError, epsilon_for, plan_budget
from fer_core.results.files import SWEEP_COLUMNS, sweep_rows
from fer_core.results.sweep import expected_accuracy


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return load_dataset(write_npz(tmp_path_factory.mktemp("cmp") / "tiny.npz", n_train=16, n_val=16, n_test=96))


@pytest.fixture(scope="module")
def other_ckpt(tmp_path_factory):
    """A second untrained tiny ResNet (different seed and preprocessing mean) that disagrees with random_ckpt."""
    from fer_core.models.architectures import build_model, model_arguments
    from fer_core.models.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(1)
    d = tmp_path_factory.mktemp("ck") / "other"
    args = model_arguments("resnet", **TINY_RESNET)
    save_checkpoint(d, build_model("resnet", **args), {"arch": "resnet", "model_args": args, "classes": list(EMOTIONS),
                                                       "preprocessing": {"mean": 0.3, "std": 0.3}})
    return load_checkpoint(d)


@pytest.fixture(scope="module")
def yunet():
    return FaceDetector("yunet")


def test_model_against_itself_agrees_everywhere(random_ckpt, tiny_data):
    res = compare_on_split(random_ckpt, random_ckpt, tiny_data)
    assert res["n"] == 96 and res["split"] == "PrivateTest"
    assert res["agreement"] == 1.0 and res["n_disagree"] == 0 and res["disagreements"] == []
    assert res["a"] == res["b"]
    assert sum(map(sum, res["a"]["confusion_matrix"])) == 96


def test_two_models_disagree_consistently(random_ckpt, other_ckpt, tiny_data):
    from fer_core.models.predict import predict_proba

    res = compare_on_split(random_ckpt, other_ckpt, tiny_data, max_examples=5)
    faces, labels = tiny_data.split("PrivateTest")
    # Each model's figures equal a direct evaluation with its own card's preprocessing.
    for key, ck, (mean, std) in (("a", random_ckpt, (0.5, 0.25)), ("b", other_ckpt, (0.3, 0.3))):
        probs = predict_proba(ck.model, faces, mean=mean, std=std)
        present = sorted(set(labels.tolist()))
        ref = classification_report(labels, probs, EMOTIONS, classes=present)
        assert res[key]["accuracy"] == pytest.approx(ref["accuracy"])
        assert res[key]["macro_f1"] == pytest.approx(ref["macro_f1"])
        assert res[key]["confusion_matrix"] == ref["confusion_matrix"]
        assert res[key]["recall"] == {c: v["recall"] for c, v in ref["per_class"].items()}
    assert 0.0 <= res["agreement"] < 1.0
    assert res["n_disagree"] == round((1 - res["agreement"]) * res["n"]) > 0
    assert len(res["disagreements"]) == min(5, res["n_disagree"])
    mean_conf = [(d["confidence_a"] + d["confidence_b"]) / 2 for d in res["disagreements"]]
    assert mean_conf == sorted(mean_conf, reverse=True)
    for d in res["disagreements"]:
        assert d["label_a"] != d["label_b"] and d["true"] == EMOTIONS[labels[d["index"]]]
        assert 0 < d["confidence_a"] <= 1 and 0 < d["confidence_b"] <= 1
    # The predicted labels in the disagreements match the confusion matrices' row/column sums.
    assert sum(map(sum, res["b"]["confusion_matrix"])) == res["n"]
    # Deterministic.
    assert compare_on_split(random_ckpt, other_ckpt, tiny_data, max_examples=5) == res
    imgs = example_faces(tiny_data, "PrivateTest", [d["index"] for d in res["disagreements"]], scale=3)
    assert imgs.shape == (len(res["disagreements"]), 144, 144) and imgs.dtype == np.uint8
    first = res["disagreements"][0]["index"]
    np.testing.assert_array_equal(imgs[0, ::3, ::3], faces[first])
    assert example_faces(tiny_data, "PrivateTest", [], scale=2).shape == (0, 96, 96)


def test_compare_on_split_errors(random_ckpt, tiny_data):
    with pytest.raises(DatasetError):
        compare_on_split(random_ckpt, random_ckpt, tiny_data, split="Test")
    with pytest.raises(ValueError, match="scale"):
        example_faces(tiny_data, "PrivateTest", [0], scale=0)


def test_compare_photo_sample(random_ckpt, other_ckpt, yunet):
    recs = compare_photo(SAMPLE_PHOTO, random_ckpt, other_ckpt, yunet)
    assert len(recs) == 1
    r = recs[0]
    assert r["face"] == 1 and len(r["box"]) == 4
    for key in ("a", "b"):
        assert r[f"label_{key}"] in EMOTIONS and 0 < r[f"confidence_{key}"] <= 1
        assert sum(r[f"probabilities_{key}"].values()) == pytest.approx(1, abs=1e-5)
    assert r["agree"] == (r["label_a"] == r["label_b"])
    # Same detection and same answers as the one-model pipeline.
    single_a = analyze_image(SAMPLE_PHOTO, random_ckpt, yunet)[0]
    single_b = analyze_image(SAMPLE_PHOTO, other_ckpt, yunet)[0]
    assert r["box"] == single_a["box"]
    assert (r["label_a"], r["label_b"]) == (single_a["label"], single_b["label"])
    assert r["confidence_b"] == pytest.approx(single_b["confidence"])
    row = photo_table(recs)[0]
    assert row["A label"] == r["label_a"] and row["B label"] == r["label_b"] and row["agree"] == r["agree"]


def test_compare_photo_bad_and_empty_images(random_ckpt, yunet):
    with pytest.raises(ImageError):
        compare_photo(b"not an image", random_ckpt, random_ckpt, yunet)
    res = compare_photo_annotated(b"not an image", random_ckpt, random_ckpt, yunet)
    assert res.error and res.records == [] and res.annotated_a is None
    blank = np.full((200, 300, 3), 128, np.uint8)
    assert compare_photo(blank, random_ckpt, random_ckpt, yunet) == []
    res = compare_photo_annotated(SAMPLE_PHOTO.read_bytes(), random_ckpt, random_ckpt, yunet)
    assert res.error is None and len(res.records) == 1 and res.records[0]["agree"]
    assert res.annotated_a.shape == res.annotated_b.shape and res.annotated_a.ndim == 3


ROWS = [
    {"method": "scatternet", "epsilon": 1.0, "privatetest_accuracy": 0.4},
    {"method": "scatternet", "epsilon": 4.0, "privatetest_accuracy": 0.6},
    {"method": "two-stage", "epsilon": 2.0, "privatetest_accuracy": 0.55},
    {"method": "two-stage", "epsilon": 8.0, "privatetest_accuracy": float("nan")},
]


def test_expected_accuracy_interpolates_in_log_epsilon():
    assert expected_accuracy(ROWS, "scatternet", 2.0) == pytest.approx(0.5)
    assert expected_accuracy(ROWS, "scatternet", 1.0) == pytest.approx(0.4)
    assert expected_accuracy(ROWS, "scatternet", 4.0) == pytest.approx(0.6)
    x = math.sqrt(2)  # a quarter of the way in log space
    assert expected_accuracy(ROWS, "scatternet", x) == pytest.approx(0.45)
    assert expected_accuracy(ROWS, "scatternet", 0.5) is None
    assert expected_accuracy(ROWS, "scatternet", 8.0) is None
    assert expected_accuracy(ROWS, "scatternet", 0.0) is None
    assert expected_accuracy(ROWS, "two-stage", 2.0) == pytest.approx(0.55)  # NaN row ignored
    assert expected_accuracy(ROWS, "two-stage", 3.0) is None
    assert expected_accuracy(ROWS, "dp-sgd", 2.0) is None
    assert expected_accuracy([], "scatternet", 2.0) is None
    dup = [*ROWS, {"method": "scatternet", "epsilon": 4.0, "privatetest_accuracy": 0.8}]
    assert expected_accuracy(dup, "scatternet", 4.0) == pytest.approx(0.7)


def test_sweep_rows_reads_the_env_path(tmp_path, monkeypatch):
    import csv

    path = tmp_path / "sweep.csv"
    monkeypatch.setenv("FER_SWEEP_RESULTS", str(path))
    assert sweep_rows() == []
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=SWEEP_COLUMNS)
        w.writeheader()
        w.writerow({c: "" for c in SWEEP_COLUMNS} | {"method": "scatternet", "epsilon": 2.0,
                                                     "privatetest_accuracy": 0.5})
    rows = sweep_rows()
    assert len(rows) == 1 and rows[0]["method"] == "scatternet" and rows[0]["epsilon"] == 2.0


def test_plan_budget_matches_the_accountant():
    n, b, e = 28_709, 1024, 20
    plan = plan_budget(n, b, e, 1e-5, "rdp", noise_multiplier=1.0)
    # As Opacus's Poisson loader (and so a private run) does: ceil(N / b) = 29 steps per epoch at q = 1/29
    # (the planner used to quote q = b/N and e * floor(N / b) = 560 steps: another epsilon than the run's).
    assert plan["steps"] == 20 * 29 and plan["sample_rate"] == pytest.approx(1 / 29)
    assert plan["epsilon"] == pytest.approx(epsilon_for(1.0, 1 / 29, 580, 1e-5, "rdp"))
    back = plan_budget(n, b, e, 1e-5, "rdp", target_epsilon=plan["epsilon"])
    assert back["noise_multiplier"] == pytest.approx(1.0, rel=0.02)
    assert back["epsilon"] <= plan["epsilon"] * 1.01


@pytest.mark.parametrize("kwargs, message", [
    ({"delta": 1e-4}, "1/N"),
    ({"delta": 0.0}, "1/N"),
    ({"batch_size": 50_000}, "batch"),
    ({"epochs": 0}, "epochs"),
    ({"noise_multiplier": None}, "exactly one"),
    ({"target_epsilon": 2.0}, "exactly one"),
])
def test_plan_budget_refuses_bad_settings(kwargs, message):
    args = {"private_rows": 28_709, "batch_size": 1024, "epochs": 20, "delta": 1e-5, "accountant": "rdp",
            "noise_multiplier": 1.0} | kwargs
    with pytest.raises(PrivacyError, match=message):
        plan_budget(**args)
