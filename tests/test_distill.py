"""Knowledge distillation: the loss's known answers, the teacher, the FKD views, and a student trained end to end."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_RESNET, make_faces
from test_train import tiny_config

from fer_core.models.architectures import build_model, model_arguments
from fer_core.models.checkpoint import load_checkpoint, save_checkpoint
from fer_core.privacy.accounting import PrivacyError
from fer_core.training.config import TrainConfig
from fer_core.training.distill import (
    VIEWS_FILE,
    DistillationError,
    Teacher,
    TeacherViews,
    augmented_view,
    distillation_loss,
)
from fer_core.training.lifecycle import main
from fer_core.training.private import check_private_config


def test_alpha_zero_is_cross_entropy_and_alpha_one_is_hintons_kl():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(16, 7, generator=g), torch.randn(16, 7, generator=g)
    y = torch.randint(0, 7, (16,), generator=g)
    T = 3.0
    pt = torch.softmax(t / T, 1)
    ce = F.cross_entropy(s, y, label_smoothing=0.1)
    assert distillation_loss(s, pt, y, T, 0.0, 0.1) == pytest.approx(float(ce), rel=1e-6)
    # KL(p_t || p_s) * T^2, written out
    ps = torch.softmax(s / T, 1)
    kl = float((pt * (pt.log() - ps.log())).sum(1).mean()) * T * T
    assert distillation_loss(s, pt, y, T, 1.0) == pytest.approx(kl, rel=1e-5)
    assert distillation_loss(s, pt, y, T, 0.25, 0.1) == pytest.approx(0.25 * kl + 0.75 * float(ce), rel=1e-5)
    # a student that already matches the teacher has nothing left to learn from it
    assert float(distillation_loss(t, pt, y, T, 1.0)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(s, pt, y, 0.0, 0.5)


def _teacher_ckpt(tmp_path, name="teacher", seed=0, classes=None):
    from fer_core import EMOTIONS

    torch.manual_seed(seed)
    classes = classes or list(EMOTIONS)
    args = model_arguments("resnet", **{**TINY_RESNET, "num_classes": len(classes)})
    save_checkpoint(tmp_path / name, build_model("resnet", **args),
                    {"arch": "resnet", "model_args": args, "classes": classes})
    return tmp_path / name


def test_teacher_ensemble_flip_and_class_check(tmp_path):
    a, b = _teacher_ckpt(tmp_path, "a", 0), _teacher_ckpt(tmp_path, "b", 1)
    x = torch.randn(5, 1, 48, 48)
    T = 2.0
    ma, mb = load_checkpoint(a).model.eval(), load_checkpoint(b).model.eval()
    with torch.no_grad():
        pa, pb = torch.softmax(ma(x) / T, 1), torch.softmax(mb(x) / T, 1)
        pa_flip = torch.softmax(ma(torch.flip(x, dims=[3])) / T, 1)
    cfg = TrainConfig(teacher=f"{a}, {b}")
    from fer_core import EMOTIONS
    from fer_core.data.preprocess import MEAN, STD

    ens = Teacher.from_config(cfg, list(EMOTIONS), MEAN, STD)
    assert torch.allclose(ens.probabilities(x, T), (pa + pb) / 2, atol=1e-6)
    flip = Teacher.from_config(TrainConfig(teacher=str(a), teacher_flip=True), list(EMOTIONS), MEAN, STD)
    assert torch.allclose(flip.probabilities(x, T), (pa + pa_flip) / 2, atol=1e-6)
    block = ens.describe(cfg)
    assert [t["name"] for t in block["teachers"]] == ["a", "b"]
    assert len(block["teachers"][0]["weights_sha256"]) == 64 and block["temperature"] == cfg.kd_temperature
    eight = _teacher_ckpt(tmp_path, "ferplus", classes=[*EMOTIONS, "contempt"])
    with pytest.raises(DistillationError, match="label set"):
        Teacher.from_config(TrainConfig(teacher=str(eight)), list(EMOTIONS), MEAN, STD)
    with pytest.raises(DistillationError, match="nowhere"):
        Teacher.from_config(TrainConfig(teacher=str(tmp_path / "nowhere")), list(EMOTIONS), MEAN, STD)


def test_views_are_reproducible_and_resume(tmp_path):
    faces = torch.from_numpy(make_faces(300, seed=3)[0])
    cfg = TrainConfig(teacher=str(_teacher_ckpt(tmp_path)), kd_views=3, kd_temperature=2.0)
    v1 = augmented_view(faces, cfg, 1, chunk=128)
    assert torch.equal(v1, augmented_view(faces, cfg, 1, chunk=128))
    assert not torch.equal(v1, augmented_view(faces, cfg, 2, chunk=128))
    from fer_core import EMOTIONS
    from fer_core.data.preprocess import MEAN, STD

    teacher = Teacher.from_config(cfg, list(EMOTIONS), MEAN, STD)
    (tmp_path / "a").mkdir()
    full = TeacherViews(teacher, faces, cfg, tmp_path / "a", progress=False)
    # interrupted after one view: the state file says so; a new TeacherViews finishes the rest
    (tmp_path / "b").mkdir()
    state = torch.load(tmp_path / "a" / VIEWS_FILE, weights_only=True)
    state["done"] = 1
    state["probs"][1:] = 0
    torch.save(state, tmp_path / "b" / VIEWS_FILE)
    resumed = TeacherViews(teacher, faces, cfg, tmp_path / "b", progress=False)
    assert torch.allclose(resumed.probs, full.probs)
    x, p = full.epoch(4)  # view 4 mod 3 = 1
    assert torch.equal(x, augmented_view(faces, cfg, 1))
    with torch.no_grad():
        assert torch.allclose(p, teacher.probabilities(x, cfg.kd_temperature), atol=1e-6)
    assert torch.allclose(p.sum(1), torch.ones(len(faces)), atol=1e-5)


def test_student_learns_from_a_trained_teacher(tmp_path, synthetic_npz):
    teacher = main(tiny_config(tmp_path / "t", synthetic_npz, epochs=6, export=str(tmp_path / "teacher")),
                   command="pytest")
    assert teacher["finished"]
    cfg = tiny_config(tmp_path / "s", synthetic_npz, epochs=6, export=str(tmp_path / "student"),
                      model_args={**TINY_RESNET, "norm": "batch"}, teacher=str(tmp_path / "teacher"),
                      kd_temperature=2.0, kd_alpha=0.7, kd_views=2)
    res = main(cfg, command="pytest")
    card = load_checkpoint(tmp_path / "student").card
    assert card["distillation"]["teachers"][0]["name"] == "teacher"
    assert card["distillation"]["views"] == 2 and card["model_args"]["norm"] == "batch"
    assert max(h["val_accuracy"] for h in res["history"]) > 0.35  # well above chance (1/7)
    assert (tmp_path / "s" / "run" / VIEWS_FILE).is_file()
    # the README's generated section and the Models page's sentence come from that block
    from fer_core.results.report import students_section
    from fer_core.results.tables import distillation_text

    text = students_section(tmp_path, peers_path=tmp_path / "no_peers.csv")
    assert "`student`" in text and "`teacher`" in text and "T = 2.0" in text and "pytest" in text
    assert "teacher" not in students_section(tmp_path / "t")  # no student there: nothing to say
    assert "2 fixed augmented views" in distillation_text(card)
    assert distillation_text(load_checkpoint(tmp_path / "teacher").card) is None


def test_private_runs_refuse_a_teacher_and_batch_norm(tmp_path):
    with pytest.raises(PrivacyError, match="teacher"):
        check_private_config(TrainConfig(dp_method="scatternet", arch="scatternet", epsilon=8.0, teacher="x"))
    with pytest.raises(PrivacyError, match="BatchNorm"):
        check_private_config(TrainConfig(dp_method="two-stage", init_from="x", epsilon=8.0,
                                         model_args={"norm": "batch"}))


def test_batch_norm_student_on_onnx_runtime_matches_torch():
    from fer_core.inference.runtime import OnnxModule, onnx_session
    from fer_core.models.predict import predict_proba

    torch.manual_seed(0)
    model = build_model("resnet", **{**TINY_RESNET, "norm": "batch"})
    model.train()
    with torch.no_grad():  # give the running statistics something other than their initial values
        for _ in range(3):
            model(torch.randn(32, 1, 48, 48) * 2 + 0.5)
    model.eval()
    faces = make_faces(40, seed=5)[0]
    want = predict_proba(model, faces, 16, flip_tta=True)
    got = predict_proba(OnnxModule(onnx_session(model)), faces, 16, flip_tta=True)
    assert np.abs(want - got).max() < 1e-4
    with pytest.raises(ValueError, match="norm"):
        build_model("resnet", norm="layer")
