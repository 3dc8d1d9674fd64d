"""Membership-inference audit: attacks (loss threshold, offline RMIA, LiRA) with their statistics (ROC, TPR
at low FPR, Clopper-Pearson intervals, empirical epsilon lower bounds), the blind baseline that measures
a member/non-member split's shift, audit twins that test a recipe on one distribution, and the verdicts
the Privacy audit page shows; results go through :mod:`fer_core.results.files`.
"""

from fer_core.audit.attacks import (
    RMIA_OFFLINE_A,
    attack_metrics,
    clopper_pearson,
    epsilon_lower_bound,
    loss_scores,
    rmia_scores,
    roc_curve,
    tpr_at_fpr,
)
from fer_core.audit.blind import (
    SHIFT_FLAG_AUC,
    BlindResult,
    blind_baseline,
    image_features,
)
from fer_core.audit.lira import (
    MIN_SD,
    lira_scores,
    logit_confidence,
)
from fer_core.audit.membership import (
    REFERENCE_ARGS,
    AuditRows,
    audit_checkpoint,
    audit_rows,
    membership_rows,
    run_audit,
    train_reference_models,
    true_label_probability,
)
from fer_core.audit.twins import (
    TWIN_AUDIT_DIR,
    audit_twins,
    run_twin_audit,
    train_twins,
    twin_audit_rows,
    twin_config,
    twin_logits,
)
from fer_core.audit.verdict import (
    ATTACK_NAMES,
    AUDIT_TABLE_COLUMNS,
    Verdict,
    attack_order,
    audit_sample_text,
    audit_table_rows,
    audit_verdict,
    roc_curves,
    usable_audit_rows,
)

__all__ = [
    "ATTACK_NAMES",
    "AUDIT_TABLE_COLUMNS",
    "AuditRows",
    "BlindResult",
    "MIN_SD",
    "REFERENCE_ARGS",
    "RMIA_OFFLINE_A",
    "SHIFT_FLAG_AUC",
    "TWIN_AUDIT_DIR",
    "Verdict",
    "attack_metrics",
    "attack_order",
    "audit_checkpoint",
    "audit_rows",
    "audit_sample_text",
    "audit_table_rows",
    "audit_twins",
    "audit_verdict",
    "blind_baseline",
    "clopper_pearson",
    "epsilon_lower_bound",
    "image_features",
    "lira_scores",
    "logit_confidence",
    "loss_scores",
    "membership_rows",
    "rmia_scores",
    "roc_curve",
    "roc_curves",
    "run_audit",
    "run_twin_audit",
    "tpr_at_fpr",
    "train_reference_models",
    "train_twins",
    "true_label_probability",
    "twin_audit_rows",
    "twin_config",
    "twin_logits",
    "usable_audit_rows",
]
