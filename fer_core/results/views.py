"""What the Benchmarks and Privacy pages show, computed here so that the pages only lay it out: the table
filters, the live speed figures merged with the committed ones, where the ratios to the peer package fer
come from, the training-set sizes the Privacy page quotes and the accuracy to expect at a planned epsilon.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from fer_core import EMOTIONS
from fer_core.privacy.accounting import PUBLIC_BACKBONE_METHODS
from fer_core.results.files import PEERS_COMMAND, finite_or_none
from fer_core.results.speed import measured_on
from fer_core.results.sweep import expected_accuracy
from fer_core.results.tables import FIGURE_COLUMNS, as_card, privacy_costs

#: The ``method`` of the live figures in the speed scatter (a trace of its own).
LIVE = "measured here (live)"
_ACC = "PrivateTest accuracy"

# --- Benchmarks ----------------------------------------------------------------------------------------------------


def benchmark_filter(rows: Iterable[dict], privacy: Sequence[str], archs: Sequence[str], label_sets: Sequence[str],
                     query: str = "") -> list[dict]:
    """The :func:`fer_core.results.tables.benchmark_rows` that pass the Benchmarks page's filters.

    Args:
        privacy: which of ``"private"`` and ``"not private"`` to keep.
        archs, label_sets: the ``arch`` and ``label set`` values to keep.
        query: kept rows contain it (case-insensitive, stripped) in ``model``, ``method``, ``training
            data`` or ``privacy``; empty keeps all.
    """
    q = query.strip().lower()
    return [r for r in rows
            if ("private" if r["private"] else "not private") in privacy and str(r["arch"]) in archs
            and r["label set"] in label_sets
            and (not q or any(q in str(r[k]).lower() for k in ("model", "method", "training data", "privacy")))]


def _figure_key(column: str) -> str:
    return next(k for k, v in FIGURE_COLUMNS.items() if v == column)


def live_speed_points(rows: Iterable[dict], shown: Iterable[dict], live_results: Iterable[dict],
                      axis: str) -> list[dict]:
    """Points of the accuracy-against-speed chart: the ``shown`` rows, plus one point per live result of a
    shown model (``method`` :data:`LIVE`, its accuracy from ``rows``, its figure under ``axis``, a
    :data:`fer_core.results.tables.FIGURE_COLUMNS` value)."""
    shown = list(shown)
    acc_of = {r["model"]: r[_ACC] for r in rows}
    names = {r["model"] for r in shown}
    key = _figure_key(axis)
    return shown + [{"model": r["model"], "method": LIVE, _ACC: acc_of.get(r["model"]), axis: r[key]}
                    for r in live_results if r["model"] in names]


def live_comparison_rows(rows: Iterable[dict], live_results: Iterable[dict]) -> list[dict]:
    """One row per live result: ``model``, then per speed figure ``"<column> (committed)"`` (from ``rows``,
    None when the model has none) and ``"<column> (here)"`` (the live figure)."""
    committed = {r["model"]: r for r in rows}
    out = []
    for r in live_results:
        row = {"model": r["model"]}
        for key, col in FIGURE_COLUMNS.items():
            row[f"{col} (committed)"] = committed.get(r["model"], {}).get(col)
            row[f"{col} (here)"] = r[key]
        out.append(row)
    return out


def peers_source(peer_rows: Iterable[dict]) -> str:
    """Where the Benchmarks table's ratios to fer come from, for its caption: ``"<machine> on <date>
    (`<command>`)"`` for each distinct machine, date and command of the ``peers.csv`` rows
    (:func:`fer_core.results.files.read_peers`; the machine as :func:`fer_core.results.speed.describe_machine`
    writes it), or ``"not measured yet (`<how to produce them>`)"`` when there are none."""
    runs = measured_on(r for r in peer_rows if r.get("model"))
    return "; ".join(f"{m} on {d} (`{c}`)" for m, d, c in runs) or f"not measured yet (`{PEERS_COMMAND}`)"


# --- Privacy -------------------------------------------------------------------------------------------------------


def split_faces(card: dict | None, split: str | None = None) -> int | None:
    """How many rows a model card says a split of its data has (``data.rows[split]``; ``split`` None: its
    training split, else ``data.train_rows_used``); None without a card or a count."""
    if card is None:
        return None
    data = as_card(card).get("data") or {}
    n = finite_or_none((data.get("rows") or {}).get(split or data.get("train_split", "Training")))
    if n is None and split is None:
        n = finite_or_none(data.get("train_rows_used"))
    return None if n is None else int(n)


def training_faces(card: dict | None) -> int | None:
    """:func:`split_faces` of the card's training split."""
    return split_faces(card)


def recall_comparison(recall_a: dict, recall_b: dict) -> dict[str, dict]:
    """``{"A recall": {...}, "B recall": {...}, "B − A": {...}}`` per class of two recall dicts (the Compare
    page's table; a class missing from one side counts as None there and in the difference)."""
    classes = list(dict.fromkeys([*recall_a, *recall_b]))
    diff = {c: None if recall_a.get(c) is None or recall_b.get(c) is None else recall_b[c] - recall_a[c]
            for c in classes}
    return {"A recall": {c: recall_a.get(c) for c in classes}, "B recall": {c: recall_b.get(c) for c in classes},
            "B − A": diff}


def class_sizes(dataset, split: str = "Training") -> list[dict]:
    """Rows per FER2013 class in one split of a :class:`fer_core.data.datasets.FERDataset`.

    Returns:
        ``[{"emotion", "count" (int), "share" (of the split, 0-1)}]`` in :data:`fer_core.EMOTIONS` order,
        smallest class first when sorted by ``count``; ``[]`` when the split is absent or empty.
    """
    if split not in dataset.splits:
        return []
    counts = np.bincount(dataset.labels[dataset.indices(split)], minlength=len(EMOTIONS))[:len(EMOTIONS)]
    total = int(counts.sum())
    if total == 0:
        return []
    return [{"emotion": e, "count": int(k), "share": float(k) / total} for e, k in zip(EMOTIONS, counts, strict=True)]


def expected_accuracy_rows(sweep_rows: list[dict], methods: Iterable[str], epsilon: float) -> list[dict]:
    """The budget planner's table: per method, the PrivateTest accuracy to expect at ``epsilon``
    (:func:`fer_core.results.sweep.expected_accuracy`) as ``"67.8%"``, or ``"outside the measured range"``."""
    out = []
    for m in methods:
        acc = expected_accuracy(sweep_rows, m, epsilon)
        out.append({"method": m, "expected PrivateTest accuracy":
                    "outside the measured range" if acc is None else f"{100 * acc:.1f}%"})
    return out


def privacy_cost_rows(sweep_rows: Iterable[dict], references: Iterable[dict],
                      end_to_end: float | None = None) -> list[dict]:
    """What privacy costs each method: per sweep run, its PrivateTest accuracy beside the method's non-private
    reference and the difference (:func:`fer_core.results.tables.privacy_costs`).

    Args:
        sweep_rows: :func:`fer_core.results.files.sweep_rows` rows.
        references: :func:`fer_core.results.files.reference_rows` rows.
        end_to_end: PrivateTest accuracy (0-1) of a non-private model with the same public pretraining fine-tuned end
            to end (:func:`fer_core.app.support.public_pretrained_card`); adds a column, for the methods that stand
            on public weights (:data:`~fer_core.privacy.accounting.PUBLIC_BACKBONE_METHODS`), with how far each run
            is below it.

    Returns:
        ``{"method", "ε", "PrivateTest accuracy", "non-private reference", "cost of privacy"}`` rows (accuracies as
        ``"61.2%"``, the cost in percentage points, e.g. ``"2.1 points"``), by method and ε; methods without a
        reference are left out. With ``end_to_end``, also ``"below end-to-end fine-tuning"`` (``"6.5 points"``, or
        ``"—"`` for a method that does not stand on public weights).
    """
    rows = []
    for c in privacy_costs(sweep_rows, references):
        row = {"method": c["method"], "ε": round(c["epsilon"], 2), _ACC: f"{100 * c['accuracy']:.1f}%",
               "non-private reference": f"{100 * c['reference']:.1f}%",
               "cost of privacy": f"{100 * c['cost']:.1f} points"}
        if end_to_end is not None:
            row[END_TO_END_COLUMN] = (f"{100 * (end_to_end - c['accuracy']):.1f} points"
                                      if c["method"] in PUBLIC_BACKBONE_METHODS else "—")
        rows.append(row)
    return rows


#: The column of :func:`privacy_cost_rows` measured against the end-to-end fine-tuned public-pretrained model.
END_TO_END_COLUMN = "below end-to-end fine-tuning"
