"""FER+ labels (Barsoum et al. 2016): derivation from the votes, the FER+ dataset, training and evaluation on it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, TINY_RESNET, make_faces
from test_train import tiny_config

from fer_core import EMOTIONS, FERPLUS_EMOTIONS
from fer_core.data.datasets import DatasetError, load_dataset
from fer_core.data.ferplus import agreement_matrix, ferplus_dataset, ferplus_labels, with_label_set
from fer_core.models.architectures import build_model, model_arguments
from fer_core.models.checkpoint import load_checkpoint, save_checkpoint
from fer_core.training.lifecycle import main

#            neu hap sur sad ang dis fea con unk NF
VOTES = np.array([
    [0, 8, 1, 0, 0, 0, 0, 0, 1, 0],  # 0 clear majority: happy
    [3, 0, 0, 4, 2, 0, 0, 1, 0, 0],  # 1 plurality without majority: sad
    [0, 0, 4, 0, 0, 0, 4, 0, 2, 0],  # 2 tie surprise/fear: the first column wins (surprise)
    [4, 0, 0, 0, 0, 0, 0, 0, 4, 2],  # 3 tie neutral/unknown: plurality not an emotion -> dropped
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # 4 not a face -> dropped
    [1, 0, 0, 0, 0, 0, 0, 0, 6, 3],  # 5 unknown plurality -> dropped
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # 6 no votes -> dropped
    [0, 1, 0, 0, 0, 0, 0, 9, 0, 0],  # 7 contempt (class 7), but match_status 3 -> dropped
    [0, 0, 0, 0, 0, 2, 0, 5, 3, 0],  # 8 contempt, with unknown votes left out of the distribution
])
STATUS = np.array([0, 1, 0, 0, 2, 0, 0, 3, 0])


def test_labels_from_a_hand_made_vote_table():
    fp = ferplus_labels(VOTES, STATUS)
    assert fp.keep.tolist() == [True, True, True, False, False, False, False, False, True]
    assert fp.labels.tolist() == [1, 3, 2, -1, -1, -1, -1, -1, 7]
    assert [FERPLUS_EMOTIONS[k] for k in fp.labels[fp.keep]] == ["happy", "sad", "surprise", "contempt"]
    assert fp.dropped == {"match_status": 2, "unknown_or_not_a_face": 3}
    assert fp.ties == 1
    np.testing.assert_allclose(fp.distribution[0], [0, 8 / 9, 1 / 9, 0, 0, 0, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(fp.distribution[8], [0, 0, 0, 0, 0, 2 / 7, 0, 5 / 7], rtol=1e-6)
    np.testing.assert_allclose(fp.distribution[fp.keep].sum(1), 1.0, rtol=1e-6)
    assert not fp.distribution[~fp.keep].any()


def test_without_match_status_only_the_votes_decide():
    fp = ferplus_labels(VOTES)
    assert fp.labels[7] == 7 and fp.labels[4] == -1


@pytest.mark.parametrize("bad", [np.zeros((3, 8)), np.zeros(10), -np.ones((2, 10))])
def test_malformed_votes_are_refused(bad):
    with pytest.raises(DatasetError, match=r"\(N, 10\)"):
        ferplus_labels(bad)


def test_agreement_matrix_counts_pairs_and_skips_dropped_rows():
    m = agreement_matrix([3, 3, 2, 6, 0], [1, 1, 6, -1, 4])
    assert m.shape == (7, 8) and m.sum() == 4
    assert m[3, 1] == 2 and m[2, 6] == 1 and m[0, 4] == 1


def write_votes_npz(path, n_train=256, n_val=64, n_test=64, seed=0):
    """Synthetic faces whose FER+ votes mostly agree with a learnable 8-class signal; some rows unusable."""
    n = n_train + n_val + n_test
    images, labels = make_faces(n, seed, classes=8)
    rng = np.random.default_rng(seed)
    votes = np.zeros((n, 10), np.uint8)
    for i, k in enumerate(labels):
        votes[i, k] = 7
        votes[i, rng.integers(0, 10, 3)] += 1
    votes[::25, 9] = 10  # every 25th row is "not a face"
    status = np.zeros(n, np.int8)
    status[5::40] = 3  # votes that do not belong to the image
    fer2013 = np.clip(labels, 0, 6).astype(np.int8)
    usage = np.array(["Training"] * n_train + ["PublicTest"] * n_val + ["PrivateTest"] * n_test)
    np.savez(path, images=images, label=fer2013, usage=usage, ferplus_votes=votes, match_status=status)
    return path


def test_ferplus_dataset_keeps_labelled_rows_with_distributions(tmp_path):
    ds = load_dataset(write_votes_npz(tmp_path / "v.npz"))
    fp = ferplus_dataset(ds)
    expected = ferplus_labels(ds.ferplus_votes, ds.match_status)
    assert fp.label_set == "ferplus" and len(fp) == int(expected.keep.sum()) < len(ds)
    assert fp.splits == ds.splits and fp.sha256 == ds.sha256
    assert set(fp.labels.tolist()) <= set(range(8)) and fp.soft_labels.shape == (len(fp), 8)
    np.testing.assert_array_equal(fp.labels, fp.soft_labels.argmax(1))  # no ties among 7-vote winners
    assert with_label_set(fp, "ferplus") is fp and with_label_set(ds, "fer2013") is ds


def test_ferplus_needs_votes(synthetic_npz):
    with pytest.raises(DatasetError, match="no 'ferplus_votes'.*fer2013.npz"):
        ferplus_dataset(load_dataset(synthetic_npz))
    with pytest.raises(DatasetError, match="no label distributions"):
        load_dataset(synthetic_npz).soft_split("Training")


def test_training_on_vote_distributions_learns_eight_classes(tmp_path):
    data = write_votes_npz(tmp_path / "v.npz", n_train=640)
    cfg = tiny_config(tmp_path, data, epochs=8, label_set="ferplus", target="distribution", label_smoothing=0.0,
                      export=str(tmp_path / "ck"))
    res = main(cfg, command="pytest")
    hist = res["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 0.2
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.card["label_set"] == "ferplus" and ck.classes == list(FERPLUS_EMOTIONS)
    assert ck.model(torch.zeros(2, 1, 48, 48)).shape == (2, 8)
    test = ck.card["metrics"]["PrivateTest"]
    n_test = int((ferplus_dataset(load_dataset(data)).usage == "PrivateTest").sum())
    assert test["n"] == n_test and len(test["confusion_matrix"]) == len(test["classes"])
    assert test["accuracy"] > 0.3  # chance is 1/8
    assert "contempt" in test["classes"]


def test_fine_tuning_a_seven_class_model_to_ferplus_keeps_all_but_the_head(tmp_path):
    torch.manual_seed(0)
    args = model_arguments("resnet", **TINY_RESNET)
    parent = build_model("resnet", **args)
    save_checkpoint(tmp_path / "parent", parent, {"name": "parent", "arch": "resnet", "model_args": args,
                                                  "classes": list(EMOTIONS)})
    data = write_votes_npz(tmp_path / "v.npz")
    cfg = tiny_config(tmp_path, data, epochs=1, lr=0.0, warmup_epochs=0, label_set="ferplus",
                      init_from=str(tmp_path / "parent"), export=str(tmp_path / "child"), ema_decay=0)
    main(cfg, command="pytest")
    child = load_checkpoint(tmp_path / "child")
    theirs, ours = parent.state_dict(), child.model.state_dict()
    fresh = [k for k in ours if theirs[k].shape != ours[k].shape]
    assert fresh == ["fc.weight", "fc.bias"]
    for k in ours:
        if k not in fresh:  # lr 0: the copied tensors are unchanged
            torch.testing.assert_close(ours[k], theirs[k])
    assert child.card["init_from"]["label_set"] == "fer2013" and child.card["init_from"]["classes"] == list(EMOTIONS)


def test_fine_tuning_refuses_another_architecture(tmp_path):
    args = model_arguments("resnet", **TINY_RESNET)
    save_checkpoint(tmp_path / "parent", build_model("resnet", **args),
                    {"arch": "resnet", "model_args": args, "classes": list(EMOTIONS)})
    data = write_votes_npz(tmp_path / "v.npz")
    cfg = tiny_config(tmp_path, data, model_args={**TINY_RESNET, "widths": [8, 32]}, label_set="ferplus",
                      init_from=str(tmp_path / "parent"))
    with pytest.raises(ValueError, match="--init-from"):
        main(cfg)


def test_cli_evaluates_a_ferplus_checkpoint_on_ferplus_labels(tmp_path):
    data = write_votes_npz(tmp_path / "v.npz")
    args = model_arguments("resnet", **{**TINY_RESNET, "num_classes": 8})
    save_checkpoint(tmp_path / "fp", build_model("resnet", **args),
                    {"name": "fp", "arch": "resnet", "model_args": args, "classes": list(FERPLUS_EMOTIONS),
                     "label_set": "ferplus"})
    r = subprocess.run([sys.executable, "-m", "fer_core", "evaluate", "--checkpoint", str(tmp_path / "fp"),
                        "--data", str(data), "--json", "--no-tta"], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    fp = ferplus_dataset(load_dataset(data))
    assert report["n"] == int((fp.usage == "PrivateTest").sum())
    assert set(report["per_class"]) <= set(FERPLUS_EMOTIONS)


def test_real_data_ferplus_facts(real_data):
    ds = load_dataset(real_data)
    fp = ferplus_labels(ds.ferplus_votes, ds.match_status)
    assert fp.dropped["match_status"] == int((ds.match_status > 1).sum()) == 175
    assert fp.keep.sum() == len(ds) - sum(fp.dropped.values())
    m = agreement_matrix(ds.labels, fp.labels)
    share = {e: m[i, FERPLUS_EMOTIONS.index(e)] / m[i].sum() for i, e in enumerate(EMOTIONS)}
    assert share["happy"] > 0.9 and share["fear"] < 0.2  # the seed facts: happy agrees 92 %, fear 13 %


def test_compare_on_split_scores_ferplus_models_on_ferplus_labels(tmp_path, random_ckpt):
    from fer_core.evaluation.compare import compare_on_split

    data = write_votes_npz(tmp_path / "v.npz")
    args = model_arguments("resnet", **{**TINY_RESNET, "num_classes": 8})
    for seed in (0, 1):
        torch.manual_seed(seed)
        save_checkpoint(tmp_path / f"fp{seed}", build_model("resnet", **args),
                        {"name": f"fp{seed}", "arch": "resnet", "model_args": args,
                         "classes": list(FERPLUS_EMOTIONS), "label_set": "ferplus"})
    a, b = load_checkpoint(tmp_path / "fp0"), load_checkpoint(tmp_path / "fp1")
    ds = load_dataset(data)
    res = compare_on_split(a, b, ds, max_examples=3)
    assert res["n"] == int((ferplus_dataset(ds).usage == "PrivateTest").sum())
    assert all(d["label_a"] in FERPLUS_EMOTIONS for d in res["disagreements"])
    with pytest.raises(ValueError, match="same label set"):
        compare_on_split(a, random_ckpt, ds)
