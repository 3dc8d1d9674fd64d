import numpy as np
import pytest

from fer_core.evaluation.metrics import classification_report, confusion_matrix, expected_calibration_error, roc_auc


def onehot(pred, k=7, conf=1.0):
    p = np.full((len(pred), k), (1 - conf) / (k - 1))
    p[np.arange(len(pred)), pred] = conf
    return p


def test_perfect_predictions():
    y = np.array([0, 1, 2, 3, 4, 5, 6, 3])
    r = classification_report(y, onehot(y))
    assert r["accuracy"] == 1.0 and r["macro_f1"] == 1.0 and r["n"] == 8
    assert r["ece"] == pytest.approx(0.0)
    assert np.trace(np.array(r["confusion_matrix"])) == 8
    assert r["negative_vs_other"]["f1"] == 1.0 and r["negative_vs_other"]["auc"] == 1.0


def test_known_precision_recall_f1():
    # class 0: tp=1, fn=1 (predicted 1), fp=0 -> P=1, R=.5, F1=2/3; class 1: tp=1, fp=1 -> P=.5, R=1, F1=2/3
    y = np.array([0, 0, 1])
    pred = np.array([0, 1, 1])
    r = classification_report(y, onehot(pred, k=2, conf=0.9), class_names=["a", "b"], negative=frozenset({"a"}))
    assert r["accuracy"] == pytest.approx(2 / 3)
    assert r["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert r["per_class"]["b"]["precision"] == 0.5 and r["per_class"]["b"]["recall"] == 1.0
    assert r["macro_f1"] == pytest.approx(2 / 3)
    assert r["confusion_matrix"] == [[1, 1], [0, 1]]
    # ECE: all confidences 0.9, accuracy 2/3 -> |2/3 - 0.9|
    assert r["ece"] == pytest.approx(0.9 - 2 / 3)


def test_subset_of_classes_restricts_predictions():
    y = np.array([3, 3, 6])
    probs = onehot(np.array([0, 3, 6]), conf=0.4)
    probs[0, 3] = 0.3  # second choice among the evaluated classes {3, 6}
    r = classification_report(y, probs, classes=[3, 6])
    assert r["classes"] == ["happy", "neutral"]
    assert r["accuracy"] == 1.0
    assert len(r["confusion_matrix"]) == 2


def test_confusion_matrix_counts():
    cm = confusion_matrix([0, 0, 1, 2], [0, 1, 1, 0], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_auc_known_answers():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert roc_auc(np.array([1, 1]), np.array([0.1, 0.2])) is None
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 4000).astype(bool)
    assert abs(roc_auc(labels, rng.random(4000)) - 0.5) < 0.03


def test_ece_bins():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.75, 0.25], [0.75, 0.25], [0.25, 0.75], [0.25, 0.75]])
    # every confidence 0.75, half correct -> ECE 0.25
    assert expected_calibration_error(y, probs) == pytest.approx(0.25)


def test_errors():
    with pytest.raises(ValueError):
        classification_report(np.array([0]), np.ones((2, 7)) / 7)
    with pytest.raises(ValueError):
        classification_report(np.array([], int), np.zeros((0, 7)))
