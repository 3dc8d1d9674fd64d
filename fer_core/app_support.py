"""Streamlit helpers shared by the pages: cached model loading and the sidebar model picker.

Models are loaded once per process with ``st.cache_resource`` and never mutated (they are in eval
mode with gradients off). Pages import from here instead of touching torch directly.
"""

from __future__ import annotations

import streamlit as st

from fer_core.checkpoints import (
    DEFAULT_CHECKPOINT,
    Checkpoint,
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    read_card,
)


@st.cache_resource(show_spinner="Loading face detector…")
def cached_detector(kind: str = "yunet"):
    """A shared :class:`fer_core.detect.FaceDetector` (thread-safe), created once per process."""
    from fer_core.detect import FaceDetector

    return FaceDetector(kind)


@st.cache_resource(show_spinner="Loading model…")
def cached_checkpoint(path: str) -> Checkpoint:
    """The checkpoint at ``path``, loaded once per server process (shared, read-only)."""
    import torch

    torch.set_num_threads(1)  # the server shares the CPU with other sessions
    return load_checkpoint(path)


def selected_checkpoint() -> Checkpoint | None:
    """The model chosen in the sidebar (loaded and cached), or None if no checkpoint is shipped."""
    path = st.session_state.get("checkpoint")
    if path is None:
        paths = list(available_checkpoints())
        if not paths:
            return None
        path = next((p for p in paths if p.endswith(DEFAULT_CHECKPOINT)), paths[0])
    return cached_checkpoint(path)


def checkpoint_label(card: dict) -> str:
    """``name — acc 68.1%, not private`` for the model picker."""
    acc = card.get("metrics", {}).get("PrivateTest", {}).get("accuracy")
    priv = card.get("privacy", {})
    privacy = f"ε={priv['epsilon']:g}" if priv.get("private") else "not private"
    acc_s = f"{100 * acc:.1f}%" if acc is not None else "n/a"
    return f"{card.get('name', '?')} — PrivateTest {acc_s}, {privacy}"


def available_checkpoints() -> dict[str, dict]:
    """``{folder path: model card}`` of every readable checkpoint in ``checkpoints/``."""
    out = {}
    for d in list_checkpoints():
        try:
            out[str(d)] = read_card(d)
        except CheckpointError:
            continue
    return out


def model_picker() -> str | None:
    """Sidebar select box of the shipped checkpoints; returns the chosen folder (or None if none)."""
    cards = available_checkpoints()
    if not cards:
        st.sidebar.warning("No checkpoints found in `checkpoints/`. Train one with `python -m fer_core train`.")
        return None
    paths = list(cards)
    default = next((i for i, p in enumerate(paths) if p.endswith(DEFAULT_CHECKPOINT)), 0)
    choice = st.sidebar.selectbox(
        "Model", paths, index=default, key="checkpoint",
        format_func=lambda p: checkpoint_label(cards[p]),
        help="Every checkpoint in checkpoints/, with its PrivateTest accuracy and privacy status.",
    )
    return choice
