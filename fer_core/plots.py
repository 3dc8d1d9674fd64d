"""Plotly figures for the app. Each takes plain data (lists, dicts) and returns a ``go.Figure``."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go


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
