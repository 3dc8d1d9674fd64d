"""The shipped distilled student: its card names its teacher, it is a quarter of the teacher's size, and its
accuracy and fast path hold on the real data (those parts skipped where ../shared/data is absent)."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from fer_core.inference.runtime import PROBABILITY_TOLERANCE, OnnxModule, fast
from fer_core.models.checkpoint import CHECKPOINT_DIR, WEIGHTS_FILE, load_checkpoint, read_card
from fer_core.models.predict import face_probabilities

STUDENT = "fer2013_student"


def test_card_names_its_teacher_and_the_student_is_a_quarter_of_its_size():
    card = read_card(STUDENT)
    d = card["distillation"]
    assert d["temperature"] > 0 and 0 <= d["alpha"] <= 1 and "Hinton" in d["method"]
    (teacher,) = d["teachers"]
    shipped = CHECKPOINT_DIR.parent / teacher["path"]
    assert hashlib.sha256((shipped / WEIGHTS_FILE).read_bytes()).hexdigest() == teacher["weights_sha256"], \
        "the card's teacher is the shipped one"
    assert card["macs"] <= 1.02 * read_card(teacher["name"])["macs"] / 4  # <= ~1/4 of the teacher's MACs
    assert card["privacy"]["private"] is False and card["model_args"]["norm"] == "batch"
    assert card["config"]["teacher"] and card["selection"]["split"] == "PublicTest"


@pytest.mark.realdata
def test_privatetest_accuracy_equals_the_card(real_data):
    card = read_card(STUDENT)
    r = subprocess.run([sys.executable, "-m", "fer_core", "evaluate", "--checkpoint", f"checkpoints/{STUDENT}",
                        "--data", str(real_data), "--json", "--threads", "1"],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n"] == 3589
    assert out["accuracy"] == pytest.approx(card["metrics"]["PrivateTest"]["accuracy"], abs=0.001)


@pytest.mark.realdata
def test_fast_path_agrees_with_torch_on_privatetest(real_data):
    data = np.load(real_data)
    faces = data["images"][data["usage"] == "PrivateTest"]
    ck = load_checkpoint(STUDENT)
    quick = fast(ck)
    assert isinstance(quick.model, OnnxModule)  # BatchNorm folded into the convolutions by ONNX Runtime
    want, got = face_probabilities(ck, faces), face_probabilities(quick, faces)
    assert (want.argmax(1) == got.argmax(1)).mean() >= 0.999
    assert np.abs(want - got).max() < PROBABILITY_TOLERANCE
