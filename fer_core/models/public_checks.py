"""What the converters of the public backbones share (:mod:`fer_core.models.facex_tflite`,
:mod:`fer_core.models.sface_onnx`): their error, file hashes, and the disjointness test that shows a backbone never
trained on FER2013 -- the rows it attacks (Training against test rows not also in Training) and the loss attack's
record (Yeom et al. 2018, "Privacy Risk in Machine Learning: Analyzing the Connection to Overfitting").
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from fer_core.audit.attacks import attack_metrics, loss_scores
from fer_core.evaluation.metrics import roc_auc

#: A converter refuses a backbone whose disjointness test tells Training from PrivateTest faces better than this.
MAX_DISJOINTNESS_AUC = 0.55


class PublicModelError(RuntimeError):
    """A public backbone's package or file is missing or not what was expected, or its disjointness test failed."""


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks).

    Raises:
        OSError: the file cannot be read."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def disjointness_rows(ds, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of a disjointness test: ``n`` sampled Training rows (would-be members) and ``n`` PrivateTest rows
    whose image is not also in Training (non-members). Returns ``uint8 (2n, 48, 48)`` faces, ``int64 (2n,)``
    labels and ``bool (2n,)`` membership (members first)."""
    tr_x, tr_y = ds.split("Training")
    te_x, te_y = ds.split("PrivateTest")
    keep = np.flatnonzero(ds.dedup_mask("PrivateTest"))
    i_tr = rng.choice(len(tr_y), min(n, len(tr_y)), replace=False)
    i_te = rng.choice(keep, min(n, len(keep)), replace=False)
    faces = np.concatenate([tr_x[i_tr], te_x[i_te]])
    labels = np.concatenate([tr_y[i_tr], te_y[i_te]]).astype(np.int64)
    return faces, labels, np.r_[np.ones(len(i_tr), bool), np.zeros(len(i_te), bool)]


def loss_attack_record(probs: np.ndarray, labels: np.ndarray, member: np.ndarray, rng: np.random.Generator,
                       bootstrap: int = 500) -> dict:
    """The loss attack (Yeom et al. 2018) on ``float32 (N, K)`` probabilities of the :func:`disjointness_rows`:
    AUC with a 95 % bootstrap interval over rows, TPR at 1 % FPR and the accuracy of each group."""
    scores = loss_scores(probs[np.arange(len(labels)), labels])
    metrics = attack_metrics(member, scores)
    boot = []
    for _ in range(bootstrap):
        a = rng.choice(np.flatnonzero(member), member.sum())
        b = rng.choice(np.flatnonzero(~member), (~member).sum())
        idx = np.r_[a, b]
        boot.append(roc_auc(member[idx], scores[idx]))
    correct = probs.argmax(1) == labels
    return {"members": "Training rows (sampled)", "nonmembers": "PrivateTest rows whose image is not in Training",
            "auc": round(float(metrics["auc"]), 4),
            "auc_interval": [round(float(np.percentile(boot, 2.5)), 4), round(float(np.percentile(boot, 97.5)), 4)],
            "interval": f"95 % bootstrap over rows ({bootstrap} resamples)",
            "n_members": int(member.sum()), "n_nonmembers": int((~member).sum()),
            "tpr_at_1pct_fpr": round(float(metrics["tpr_at_1pct_fpr"]), 4),
            "accuracy_members": round(float(correct[member].mean()), 4),
            "accuracy_nonmembers": round(float(correct[~member].mean()), 4)}
