"""The shipped FER+ model (8 classes incl. contempt) on the real data (skipped where ../shared/data is absent)."""

import json
import subprocess
import sys

import pytest
from conftest import REPO

from fer_core import FERPLUS_EMOTIONS
from fer_core.data.datasets import file_sha256, load_dataset
from fer_core.data.ferplus import ferplus_dataset
from fer_core.models.checkpoint import load_checkpoint, read_card
from fer_core.results.report import FERPLUS_CHECKPOINT


@pytest.mark.realdata
def test_ferplus_privatetest_accuracy_equals_model_card(real_data):
    card = read_card(FERPLUS_CHECKPOINT)
    assert card["data"]["sha256"] == file_sha256(real_data)
    r = subprocess.run(
        [sys.executable, "-m", "fer_core", "evaluate", "--checkpoint", FERPLUS_CHECKPOINT, "--data", str(real_data),
         "--split", "PrivateTest", "--json", "--threads", "1"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    expected = card["metrics"]["PrivateTest"]
    n_test = int((ferplus_dataset(load_dataset(real_data)).usage == "PrivateTest").sum())
    assert out["n"] == expected["n"] == n_test
    assert out["accuracy"] == pytest.approx(expected["accuracy"], abs=0.001)
    assert out["macro_f1"] == pytest.approx(expected["macro_f1"], abs=0.001)
    assert out["accuracy"] >= 0.82  # the bar for FER+ plurality-vote accuracy


def test_ferplus_card_describes_its_labels_and_selection():
    card = read_card(FERPLUS_CHECKPOINT)
    assert card["label_set"] == "ferplus" and card["classes"] == list(FERPLUS_EMOTIONS)
    assert card["config"]["label_set"] == "ferplus" and card["config"]["target"] == "distribution"
    sel = card["selection"]
    assert sel["split"] == "PublicTest"
    assert sel["val_accuracy"] == pytest.approx(card["metrics"]["PublicTest"]["accuracy"], abs=0.001)
    ancestors, parent = [], card.get("init_from")
    while parent:
        ancestors.append(parent.get("label_set"))
        parent = parent.get("init_from")
    assert "fer2013" in ancestors  # fine-tuned from a FER2013 model, classifier re-initialised for 8 classes
    assert card["privacy"]["private"] is False


def test_ferplus_model_reads_the_sample_portrait_as_happy():
    from fer_core.inference.detect import FaceDetector
    from fer_core.inference.pipeline import SAMPLE_PHOTO, analyze_image

    recs = analyze_image(SAMPLE_PHOTO, load_checkpoint(FERPLUS_CHECKPOINT), FaceDetector())
    assert len(recs) == 1 and recs[0]["label"] == "happy"
    assert set(recs[0]["probabilities"]) == set(FERPLUS_EMOTIONS)
