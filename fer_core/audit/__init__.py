"""Membership-inference audit: attacks (loss threshold, offline RMIA) with their statistics (ROC, TPR at low
FPR, Clopper-Pearson intervals, empirical epsilon lower bounds), and the audit of a checkpoint that
writes ``checkpoints/results/audit.csv`` through :mod:`fer_core.results.files`.
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
    "Verdict",
    "attack_order",
    "audit_sample_text",
    "audit_table_rows",
    "audit_verdict",
    "usable_audit_rows",
    "AuditRows",
    "REFERENCE_ARGS",
    "RMIA_OFFLINE_A",
    "attack_metrics",
    "audit_checkpoint",
    "audit_rows",
    "clopper_pearson",
    "epsilon_lower_bound",
    "loss_scores",
    "membership_rows",
    "rmia_scores",
    "roc_curves",
    "roc_curve",
    "run_audit",
    "tpr_at_fpr",
    "train_reference_models",
    "true_label_probability",
]
