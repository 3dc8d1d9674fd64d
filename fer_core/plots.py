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
