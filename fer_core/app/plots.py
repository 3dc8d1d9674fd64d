"""Plotly figures for the app. Each takes plain data (lists, dicts) and returns a ``go.Figure``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative

from fer_core import EMOTIONS

#: Colours of the methods' traces (a method's reference line shares its colour).
_PALETTE = qualitative.Plotly


def confusion_matrix_figure(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str = "") -> go.Figure:
    """Heat map of a confusion matrix, rows = true class, columns = predicted, cells = share of the row.

    Args:
        matrix: ``K x K`` counts.
        classes: ``K`` class names.
    """
    rows = [[c / max(1, sum(r)) for c in r] for r in matrix]
    text = [[f"{100 * v:.0f}%<br>{c}" for v, c in zip(rv, r, strict=True)] for rv, r in zip(rows, matrix, strict=True)]
    fig = go.Figure(go.Heatmap(
        z=rows, x=list(classes), y=list(classes), text=text, texttemplate="%{text}",
        colorscale="Blues", zmin=0, zmax=1, colorbar={"title": "share of row"},
        hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
                      height=480, margin={"t": 40 if title else 10})
    return fig


def history_figure(history: Sequence[dict], title: str = "") -> go.Figure:
    """Training curves: train accuracy and validation accuracy (raw and EMA weights) per epoch.

    Args:
        history: rows of ``history.csv`` with ``epoch``, ``train_accuracy``, ``val_accuracy`` and
            optionally ``val_accuracy_ema`` (shares in [0, 1]).
    """
    fig = go.Figure()
    epochs = [int(float(h["epoch"])) for h in history]
    for key, name in (("train_accuracy", "train (augmented)"), ("val_accuracy", "PublicTest"),
                      ("val_accuracy_ema", "PublicTest, EMA weights")):
        ys = [float(h[key]) for h in history if h.get(key) not in (None, "")]
        if ys:
            fig.add_trace(go.Scatter(x=epochs[: len(ys)], y=ys, mode="lines+markers", name=name))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="accuracy", yaxis_tickformat=".0%",
                      height=380, margin={"t": 40 if title else 10})
    return fig


def probabilities_figure(records: Sequence[dict], title: str = "") -> go.Figure:
    """Grouped horizontal bars: each face's probability per emotion.

    Args:
        records: dicts with ``probabilities`` ({emotion: probability}) and optionally ``face``.
    """
    fig = go.Figure()
    for i, r in enumerate(records):
        names = list(r["probabilities"])
        fig.add_trace(go.Bar(
            y=names, x=[r["probabilities"][n] for n in names], orientation="h",
            name=f"face {r.get('face', i + 1)}", hovertemplate="%{y}: %{x:.1%}<extra>%{fullData.name}</extra>",
        ))
    fig.update_layout(title=title, barmode="group", xaxis_title="probability", xaxis_tickformat=".0%",
                      xaxis_range=[0, 1], yaxis_autorange="reversed", height=120 + 40 * 7,
                      margin={"t": 40 if title else 10}, legend_orientation="h")
    return fig


def timeline_figure(timeline: Sequence[dict], emotions: Sequence[str], track: int | None = None,
                    title: str = "") -> go.Figure:
    """Emotion probabilities over time for one face track (or every row when ``track`` is None).

    Args:
        timeline: rows with ``t`` (seconds), ``track`` and ``p_<emotion>`` probabilities.
        emotions: the emotions to draw (one line each).
    """
    rows = [r for r in timeline if track is None or r["track"] == track]
    fig = go.Figure()
    for e in emotions:
        fig.add_trace(go.Scatter(x=[r["t"] for r in rows], y=[r.get(f"p_{e}", 0.0) for r in rows], mode="lines",
                                 name=e, stackgroup="one"))
    fig.update_layout(title=title, xaxis_title="time (s)", yaxis_title="probability", yaxis_tickformat=".0%",
                      yaxis_range=[0, 1], height=360, margin={"t": 40 if title else 10})
    return fig


def paired_probabilities_figure(probs_a: dict, probs_b: dict, name_a: str = "A", name_b: str = "B",
                                title: str = "") -> go.Figure:
    """Grouped horizontal bars: one face's probability per emotion under two models.

    Args:
        probs_a, probs_b: ``{emotion: probability}`` (0-1) of model A and model B.
        name_a, name_b: legend names.
    """
    fig = go.Figure()
    for probs, name in ((probs_a, name_a), (probs_b, name_b)):
        names = list(probs)
        fig.add_trace(go.Bar(y=names, x=[probs[n] for n in names], orientation="h", name=name,
                             hovertemplate="%{y}: %{x:.1%}<extra>%{fullData.name}</extra>"))
    fig.update_layout(title=title, barmode="group", xaxis_title="probability", xaxis_tickformat=".0%",
                      xaxis_range=[0, 1], yaxis_autorange="reversed", height=120 + 40 * 7,
                      margin={"t": 40 if title else 10}, legend_orientation="h")
    return fig


def recall_comparison_figure(recall_a: dict, recall_b: dict, name_a: str = "A", name_b: str = "B",
                             title: str = "") -> go.Figure:
    """Grouped bars: per-class recall (0-1) of two models, one group per emotion.

    Args:
        recall_a, recall_b: ``{emotion: recall}``; emotions missing from one model are drawn as 0.
    """
    classes = list(dict.fromkeys([*recall_a, *recall_b]))
    fig = go.Figure()
    for rec, name in ((recall_a, name_a), (recall_b, name_b)):
        fig.add_trace(go.Bar(x=classes, y=[rec.get(c, 0.0) for c in classes], name=name,
                             hovertemplate="%{x}: %{y:.1%}<extra>%{fullData.name}</extra>"))
    fig.update_layout(title=title, barmode="group", yaxis_title="recall", yaxis_tickformat=".0%",
                      yaxis_range=[0, 1], height=360, margin={"t": 40 if title else 10}, legend_orientation="h")
    return fig


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f  # NaN -> None


def tradeoff_figure(rows: Sequence[dict], baseline_accuracy: float | None = None, title: str = "",
                    references: Sequence[dict] = (), public_pretrained_accuracy: float | None = None) -> go.Figure:
    """Privacy/accuracy trade-off: PrivateTest accuracy against epsilon, one line per method (log x-axis).

    Args:
        rows: sweep rows (``fer_core.results.sweep.read_sweep``) with ``method``, ``epsilon`` (> 0),
            ``privatetest_accuracy`` (0-1) and optionally ``target_epsilon``/``noise_multiplier``;
            rows without a finite positive epsilon or accuracy are skipped.
        baseline_accuracy: the non-private model's PrivateTest accuracy (0-1), drawn as a dashed
            horizontal line; None for none.
        references: ``reference.csv`` rows (``method``, ``privatetest_accuracy``): each method's non-private
            reference, a dotted level across that method's epsilons in the method's colour.
        public_pretrained_accuracy: a non-private model with the private models' public pretraining, fine-tuned end
            to end on Training (PrivateTest accuracy, 0-1), drawn as a dash-dot horizontal line; None for none.
    """
    fig = go.Figure()
    methods = list(dict.fromkeys(r.get("method") for r in rows))
    ref_acc = {r.get("method"): _num(r.get("privatetest_accuracy")) for r in references}
    for i, m in enumerate(methods):
        pts = sorted(
            (e, a, r) for r in rows if r.get("method") == m
            for e, a in [(_num(r.get("epsilon")), _num(r.get("privatetest_accuracy")))]
            if e is not None and e > 0 and a is not None
        )
        if not pts:
            continue
        colour = _PALETTE[i % len(_PALETTE)]
        fig.add_trace(go.Scatter(
            x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=str(m), line_color=colour,
            customdata=[[_num(p[2].get("target_epsilon")), _num(p[2].get("noise_multiplier"))] for p in pts],
            hovertemplate="ε=%{x:.3g} (target %{customdata[0]})<br>noise multiplier %{customdata[1]}"
                          "<br>PrivateTest %{y:.1%}<extra>%{fullData.name}</extra>",
        ))
        if ref_acc.get(m) is not None:
            fig.add_trace(go.Scatter(
                x=[pts[0][0], pts[-1][0]], y=[ref_acc[m]] * 2, mode="lines", name=f"{m}, non-private reference",
                line={"color": colour, "dash": "dot"},
                hovertemplate=f"{m} without noise or clipping<br>PrivateTest %{{y:.1%}}<extra></extra>",
            ))
    if baseline_accuracy is not None:
        fig.add_hline(y=baseline_accuracy, line_dash="dash", line_color="gray",
                      annotation_text=f"non-private baseline {100 * baseline_accuracy:.1f}%",
                      annotation_position="bottom right")
    if public_pretrained_accuracy is not None:
        fig.add_hline(y=public_pretrained_accuracy, line_dash="dashdot", line_color="black",
                      annotation_text="non-private, public pretraining, end to end "
                                      f"{100 * public_pretrained_accuracy:.1f}%",
                      annotation_position="top left")
    fig.update_layout(title=title, xaxis_title="ε (log scale; δ = 1e-5)", xaxis_type="log",
                      yaxis_title="PrivateTest accuracy", yaxis_tickformat=".0%", height=480,
                      margin={"t": 40 if title else 10},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.3})  # below the axis title, not on it
    return fig


def recall_vs_epsilon_figure(rows: Sequence[dict], method: str | None = None,
                             emotions: Sequence[str] | None = None, title: str = "") -> go.Figure:
    """Per-class PrivateTest recall against epsilon (log x-axis), one line per emotion.

    Args:
        rows: sweep rows with ``method``, ``epsilon`` and ``recall_<emotion>`` (0-1).
        method: draw only this method's rows; None draws every row.
        emotions: the emotions to draw (default :data:`fer_core.EMOTIONS`).
    """
    pts = sorted(
        ((e, r) for r in rows if method is None or r.get("method") == method
         for e in [_num(r.get("epsilon"))] if e is not None and e > 0),
        key=lambda p: p[0],
    )
    fig = go.Figure()
    for emo in emotions or EMOTIONS:
        xy = [(e, _num(r.get(f"recall_{emo}"))) for e, r in pts]
        xy = [(x, y) for x, y in xy if y is not None]
        if xy:
            fig.add_trace(go.Scatter(x=[p[0] for p in xy], y=[p[1] for p in xy], mode="lines+markers", name=emo,
                                     hovertemplate="ε=%{x:.3g}: recall %{y:.1%}<extra>%{fullData.name}</extra>"))
    fig.update_layout(title=title, xaxis_title="ε (log scale)", xaxis_type="log", yaxis_title="PrivateTest recall",
                      yaxis_tickformat=".0%", yaxis_range=[0, 1], height=420, margin={"t": 40 if title else 10})
    return fig


def epsilon_history_figure(history: Sequence[dict], title: str = "") -> go.Figure:
    """Privacy spent so far (epsilon) after each epoch of a DP training run.

    Args:
        history: per-epoch rows with ``epoch`` and ``epsilon``; rows without epsilon are skipped.
    """
    pts = [(int(float(h["epoch"])), _num(h.get("epsilon"))) for h in history if "epoch" in h]
    pts = [(x, y) for x, y in pts if y is not None]
    fig = go.Figure(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name="ε",
                               hovertemplate="epoch %{x}: ε=%{y:.3g}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="ε spent", height=300,
                      margin={"t": 40 if title else 10})
    return fig


def audit_roc_figure(rocs: dict, attack: str, title: str = "", floor: float = 1e-4) -> go.Figure:
    """ROC curves of a membership-inference attack, one line per model, on log-log axes.

    The low-FPR corner is what matters for privacy (can the attacker be *sure* about a few faces?),
    so both axes are logarithmic from ``floor`` to 1; points with a zero (or non-finite) FPR or TPR
    cannot be drawn there and are dropped. The diagonal TPR = FPR is a coin flip ("chance").

    Args:
        rocs: ``{model: {attack: {"fpr": [...], "tpr": [...]}}}`` (``audit_roc.json``; shares in [0, 1]).
        attack: which attack's curves to draw (``rmia`` or ``loss``); models without it are skipped.
        floor: the axes' lower end (default 1e-4).
    """
    fig = go.Figure()
    for model, attacks in rocs.items():
        curve = (attacks or {}).get(attack) if isinstance(attacks, dict) else None
        if not isinstance(curve, dict):
            continue
        pts = [(x, y) for x, y in zip(curve.get("fpr") or [], curve.get("tpr") or [], strict=False)
               for x, y in [(_num(x), _num(y))]
               if x is not None and y is not None and x > 0 and y > 0 and math.isfinite(x) and math.isfinite(y)]
        if not pts:
            continue
        fig.add_trace(go.Scatter(
            x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines", name=str(model),
            hovertemplate="FPR %{x:.3%}, TPR %{y:.3%}<extra>%{fullData.name}</extra>",
        ))
    fig.add_trace(go.Scatter(x=[floor, 1.0], y=[floor, 1.0], mode="lines", name="chance",
                             line={"dash": "dash", "color": "gray"}, hoverinfo="skip"))
    lo = math.log10(floor)
    fig.update_layout(title=title, xaxis_title="false positive rate (non-members called members; log scale)",
                      yaxis_title="true positive rate (members found; log scale)", xaxis_type="log",
                      yaxis_type="log", xaxis_range=[lo, 0], yaxis_range=[lo, 0], height=460,
                      margin={"t": 40 if title else 10}, legend_orientation="h")
    return fig


def twin_leakage_figure(points: dict, metric_label: str = "AUC", chance: float = 0.5, title: str = "",
                        percent: bool = False) -> go.Figure:
    """A leakage measure of the twin audit against the claimed ε (log x-axis): one line per DP method,
    error bars from the 95 % intervals, each non-private model as a dotted reference line, and the value
    of a coin flip as a dashed gray line.

    Args:
        points: :func:`fer_core.audit.verdict.twin_leakage_points` (``{"methods": {method: [point]},
            "reference": [point]}``, a point ``{"model", "epsilon", "value", "low", "high"}``).
        metric_label: the y-axis title (e.g. ``"AUC"``); chance: its value for a coin flip.
        percent: show the y values as percentages (a TPR).
    """
    fig = go.Figure()
    eps = [p["epsilon"] for pts in points.get("methods", {}).values() for p in pts]
    span = [min(eps), max(eps)] if eps else [0.5, 8.0]
    fmt = ".2%" if percent else ".3f"
    for method, pts in points.get("methods", {}).items():
        ys = [p["value"] for p in pts]
        fig.add_trace(go.Scatter(
            x=[p["epsilon"] for p in pts], y=ys, mode="lines+markers", name=str(method),
            error_y={"type": "data", "symmetric": False,
                     "array": [0.0 if p["high"] is None else max(0.0, p["high"] - p["value"]) for p in pts],
                     "arrayminus": [0.0 if p["low"] is None else max(0.0, p["value"] - p["low"]) for p in pts]},
            customdata=[[p["model"]] for p in pts],
            hovertemplate=f"%{{customdata[0]}}<br>claimed ε=%{{x:g}}<br>{metric_label} %{{y:{fmt}}}"
                          "<extra>%{fullData.name}</extra>",
        ))
    for ref in points.get("reference", []):
        fig.add_trace(go.Scatter(
            x=span, y=[ref["value"]] * 2, mode="lines", name=f"{ref['model']} (not private)",
            line={"dash": "dot", "color": "firebrick"},
            hovertemplate=f"{ref['model']}: no privacy<br>{metric_label} %{{y:{fmt}}}<extra></extra>",
        ))
    fig.add_trace(go.Scatter(x=span, y=[chance] * 2, mode="lines", name="chance",
                             line={"dash": "dash", "color": "gray"}, hoverinfo="skip"))
    fig.update_layout(title=title, xaxis_title="claimed ε (log scale)", xaxis_type="log", yaxis_title=metric_label,
                      yaxis_tickformat=".1%" if percent else None, height=420, margin={"t": 40 if title else 10},
                      legend_orientation="h")
    return fig


def class_distribution_figure(table, label_set: str = "FER2013") -> go.Figure:
    """Grouped bars: faces per emotion, one bar per split.

    Args:
        table: :func:`fer_core.data.explore.class_distribution`'s long table (pandas DataFrame).
        label_set: which labels to draw (``FER2013`` or ``FER+``).
    """
    sub = table[table["label_set"] == label_set]
    fig = go.Figure()
    for split, rows in sub.groupby("split", sort=False):
        fig.add_trace(go.Bar(x=rows["emotion"], y=rows["count"], name=str(split),
                             customdata=100 * rows["share"],
                             hovertemplate="%{x}: %{y} faces (%{customdata:.1f}% of the split)<extra></extra>"))
    fig.update_layout(barmode="group", title=f"{label_set} labels per split", yaxis_title="faces", height=380,
                      margin={"t": 40})
    return fig


def agreement_figure(row_share, counts, rows: Sequence[str], columns: Sequence[str]) -> go.Figure:
    """Heat map of FER2013 labels (rows) against FER+ labels (columns), cells = share of the row.

    Args:
        row_share: ``float (R, C)`` shares (rows sum to 1); counts: ``int (R, C)`` counts.
    """
    text = [[f"{100 * v:.0f}%<br>{int(c)}" for v, c in zip(rv, cv, strict=True)]
            for rv, cv in zip(row_share, counts, strict=True)]
    fig = go.Figure(go.Heatmap(
        z=[list(map(float, r)) for r in row_share], x=list(columns), y=list(rows), text=text, texttemplate="%{text}",
        colorscale="Greens", zmin=0, zmax=1, colorbar={"title": "share of row"},
        hovertemplate="FER2013 %{y}<br>FER+ %{x}<br>%{text}<extra></extra>",
    ))
    fig.update_layout(xaxis_title="FER+ plurality label", yaxis_title="FER2013 label", yaxis_autorange="reversed",
                      height=460, margin={"t": 10})
    return fig


def histogram_figure(table, column: str, by: str = "split", title: str = "", nbins: int = 64) -> go.Figure:
    """Overlaid histograms of one column of a table, one per value of ``by`` (shares, not counts)."""
    fig = go.Figure()
    for key, rows in table.groupby(by, sort=False):
        fig.add_trace(go.Histogram(x=rows[column], name=str(key), histnorm="probability", nbinsx=nbins, opacity=0.6))
    fig.update_layout(barmode="overlay", title=title, xaxis_title=column, yaxis_title="share of images", height=340,
                      margin={"t": 40})
    return fig


def benchmark_scatter_figure(rows: Sequence[dict], x: str, y: str = "PrivateTest accuracy", group: str = "method",
                             log_x: bool = False, x_title: str | None = None, y_title: str | None = None,
                             reference_lines: bool = False, symbols: dict | None = None,
                             title: str = "") -> go.Figure:
    """Scatter of one column of the Benchmarks table against another, one trace per group, names on hover.

    Args:
        rows: table rows (:func:`fer_core.results.tables.benchmark_rows`) with ``model`` and the columns ``x``,
            ``y`` and ``group``; ``y`` is a share in [0, 1] (drawn as a percentage).
        x, y: the columns to draw. Rows without a finite ``y`` are skipped; rows without a finite
            (and, with ``log_x``, positive) ``x`` are skipped, or drawn as dashed horizontal lines at
            their ``y`` labelled with the model's name when ``reference_lines`` is set (non-private
            models on an ε axis).
        group: the column that names each row's trace (e.g. ``method``).
        log_x: logarithmic x-axis.
        symbols: optional ``{group: plotly marker symbol}`` (e.g. ``"circle-open"`` for live figures).
    """
    fig = go.Figure()
    drawn, lines = {}, []
    for r in rows:
        xv, yv = _num(r.get(x)), _num(r.get(y))
        if yv is None:
            continue
        if xv is None or (log_x and xv <= 0):
            if reference_lines:
                lines.append((str(r.get("model")), yv))
            continue
        drawn.setdefault(str(r.get(group)), []).append((xv, yv, str(r.get("model"))))
    for name, pts in drawn.items():
        pts.sort()
        fig.add_trace(go.Scatter(
            x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers", name=name, text=[p[2] for p in pts],
            marker={"size": 11, "symbol": (symbols or {}).get(name, "circle")},
            hovertemplate=f"%{{text}}<br>{x_title or x}: %{{x:.4g}}<br>{y_title or y}: %{{y:.1%}}"
                          "<extra>%{fullData.name}</extra>",
        ))
    for model, yv in lines:
        fig.add_hline(y=yv, line_dash="dash", line_color="gray", annotation_text=model,
                      annotation_position="bottom right")
    fig.update_layout(title=title, xaxis_title=x_title or x, yaxis_title=y_title or y, yaxis_tickformat=".0%",
                      xaxis_type="log" if log_x else "linear", height=460, margin={"t": 40 if title else 10},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0})
    return fig
