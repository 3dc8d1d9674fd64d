"""Streamlit helpers shared by the pages: cached model loading and the sidebar model picker.

Models are loaded once per process with ``st.cache_resource`` and never mutated (they are in eval
mode with gradients off). Pages import from here instead of touching torch directly.
"""

from __future__ import annotations

import runpy
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import streamlit as st
import torch

from fer_core.app.webrtc import rtc_configuration
from fer_core.data.datasets import DatasetError, default_data_path, load_dataset
from fer_core.data.ferplus import with_label_set
from fer_core.evaluation.compare import compare_on_split, example_faces
from fer_core.inference.detect import FaceDetector
from fer_core.inference.live import LiveAnalyzer, LiveTimeline
from fer_core.inference.runtime import fast
from fer_core.models.checkpoint import (
    DEFAULT_CHECKPOINT,
    Checkpoint,
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    read_card,
)
from fer_core.privacy.accounting import plan_budget
from fer_core.results.speed import machine_info, measure_models
from fer_core.results.tables import as_card, card_row, label_set_title, privacy_text

#: The Streamlit entry point (``streamlit run app.py``).
APP = Path(__file__).resolve().parents[2] / "app.py"
_ENTRY = threading.local()  # script runs are one thread each


@contextmanager
def entry_point():
    """``app.py`` runs the chosen page inside this, so the page knows it came through the entry point."""
    _ENTRY.active = True
    try:
        yield
    finally:
        _ENTRY.active = False


def through_app() -> None:
    """Called first by every page: when Streamlit ran the page file by itself, run ``app.py`` instead (which runs
    the page) and stop.

    Streamlit 1.67 keeps its multipage "v1" mode (``PagesManager.uses_pages_directory``: a ``pages/`` folder exists)
    until some session has called ``st.navigation``: a page URL opened first after the server starts (e.g.
    ``/privacy``) then runs ``pages/privacy.py`` alone, without the page config, the app's navigation or the model
    picker. ``app.py`` calls ``st.navigation``, which leaves that mode and resolves the URL's page.
    """
    if getattr(_ENTRY, "active", False):
        return
    runpy.run_path(str(APP), run_name="__main__")
    st.stop()


@st.cache_resource(show_spinner="Loading face detector…")
def cached_detector(kind: str = "yunet", max_side: int = 640):
    """A shared :class:`fer_core.inference.detect.FaceDetector` (thread-safe), created once per process and
    per ``(kind, max_side)`` (the live webcam detects on a smaller copy than photos)."""
    return FaceDetector(kind, max_side=max_side)


@st.cache_resource(show_spinner="Loading model…")
def cached_checkpoint(path: str) -> Checkpoint:
    """The checkpoint at ``path``, loaded once per server process (shared, read-only), its classifier on the
    fast runtime (:func:`fer_core.inference.runtime.fast`: ONNX Runtime, one thread; torch where a network
    does not export)."""
    torch.set_num_threads(1)  # the server shares the CPU with other sessions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a network that stays on torch is not the user's concern
        return fast(load_checkpoint(path), threads=1)


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
    """``name — PrivateTest 68.1%, not private`` for the model picker (``name — FER+ PrivateTest 82.1%, ...``
    for a model on another label set than FER2013's), from :func:`fer_core.results.tables.card_row`."""
    c = as_card(card)
    acc = card_row(c)["PrivateTest accuracy"]
    acc_s = f"{100 * acc:.1f}%" if acc is not None else "n/a"
    labels = "" if c.label_set == "fer2013" else f"{label_set_title(c.label_set)} "
    return f"{c.name} — {labels}PrivateTest {acc_s}, {privacy_text(c.privacy, compact=True)}"


def available_checkpoints() -> dict[str, dict]:
    """``{folder path: model card}`` of every readable checkpoint in ``checkpoints/``."""
    out = {}
    for d in list_checkpoints():
        try:
            out[str(d)] = read_card(d)
        except CheckpointError:
            continue
    return out


def picker_order(cards: dict[str, dict]) -> list[str]:
    """The checkpoints grouped by privacy for the model pickers: the non-private ones first (the default model
    leading, then by name), then the private ones by method and from the weakest to the strongest guarantee
    (claimed ε descending)."""
    def key(path: str) -> tuple:
        c = as_card(cards[path])
        if not c.is_private:
            return (0, not path.endswith(DEFAULT_CHECKPOINT), c.name, 0.0)
        return (1, str(c.privacy.get("method") or ""), -(c.epsilon or 0.0), c.name)
    return sorted(cards, key=key)


def model_picker() -> str | None:
    """Sidebar select box of the shipped checkpoints, grouped by privacy (:func:`picker_order`); returns the
    chosen folder (or None if none)."""
    cards = available_checkpoints()
    if not cards:
        st.sidebar.warning("No checkpoints found in `checkpoints/`. Train one with `python -m fer_core train`.")
        return None
    paths = picker_order(cards)
    default = next((i for i, p in enumerate(paths) if p.endswith(DEFAULT_CHECKPOINT)), 0)
    choice = st.sidebar.selectbox(
        "Model", paths, index=default, key="checkpoint",
        format_func=lambda p: checkpoint_label(cards[p]),
        help="Every checkpoint in checkpoints/, with its PrivateTest accuracy and privacy status: the models "
             "trained without privacy first, then the differentially private ones by method and ε.",
    )
    return choice


def default_pair(cards: dict[str, dict]) -> tuple[str | None, str | None]:
    """Default models for the Compare page, as folder paths from :func:`available_checkpoints`.

    A = the baseline (:data:`fer_core.models.checkpoint.DEFAULT_CHECKPOINT`, else the first checkpoint);
    B = the best private checkpoint of A's label set, chosen on PublicTest accuracy (the selection split, never
    PrivateTest), else any private one, else the first other one, else A again. ``(None, None)`` if none.
    """
    paths = list(cards)
    if not paths:
        return None, None
    a = next((p for p in paths if p.endswith(DEFAULT_CHECKPOINT)), paths[0])
    label_set = as_card(cards[a]).label_set
    private = [p for p in private_cards(cards) if p != a]
    same = [p for p in private if as_card(cards[p]).label_set == label_set]

    def public_accuracy(p: str) -> float:
        return as_card(cards[p]).metrics("PublicTest").get("accuracy") or 0.0

    if same:
        return a, max(same, key=public_accuracy)
    others = [p for p in paths if p != a]
    return a, (private or others or [a])[0]


@st.cache_data(show_spinner="Comparing the two models on the test split…", max_entries=8)
def _cached_split_comparison(path_a: str, path_b: str, data_path: str, split: str, max_examples: int) -> dict:
    ck_a, ck_b = cached_checkpoint(path_a), cached_checkpoint(path_b)
    # the rows the models are scored on (FER+ drops some), so that disagreement indices find their faces
    dataset = with_label_set(load_dataset(data_path), ck_a.card.label_set)
    result = compare_on_split(ck_a, ck_b, dataset, split, max_examples=max_examples)
    result["faces"] = example_faces(dataset, split, [d["index"] for d in result["disagreements"]], scale=3)
    result["data"] = dataset.source
    return result


def split_comparison(path_a: str, path_b: str, split: str = "PrivateTest", max_examples: int = 24) -> dict:
    """:func:`fer_core.evaluation.compare.compare_on_split` on the default dataset (``$FER_DATA`` or
    ``../shared/data/fer2013.npz``), cached per (checkpoints, dataset path, split).

    Returns:
        ``compare_on_split``'s dict plus ``faces`` (``uint8 (k, 144, 144)``, the disagreements' faces
        enlarged 3x) and ``data`` (where the dataset was read from).

    Raises:
        fer_core.data.datasets.DatasetError: the dataset is missing or malformed, or lacks ``split``.
    """
    return _cached_split_comparison(path_a, path_b, str(default_data_path()), split, max_examples)


@st.cache_data(show_spinner="Computing the privacy budget…", max_entries=256)
def cached_budget(private_rows: int, batch_size: int, epochs: int, delta: float, accountant: str,
                  noise_multiplier: float | None = None, target_epsilon: float | None = None) -> dict:
    """:func:`fer_core.privacy.accounting.plan_budget`, cached (the PRV accountant takes a few seconds).

    Raises:
        fer_core.privacy.accounting.PrivacyError: as ``plan_budget``.
    """
    return plan_budget(private_rows, batch_size, epochs, delta, accountant, noise_multiplier=noise_multiplier,
                       target_epsilon=target_epsilon)


def baseline_card(cards: dict[str, dict]) -> dict | None:
    """The non-private baseline's card (:data:`fer_core.models.checkpoint.DEFAULT_CHECKPOINT`) in ``cards``, or None."""
    return next((c for p, c in cards.items() if p.endswith(DEFAULT_CHECKPOINT)), None)


def private_cards(cards: dict[str, dict]) -> dict[str, dict]:
    """The entries of ``cards`` whose ``privacy`` block says ``private: true`` (DP checkpoints)."""
    return {p: c for p, c in cards.items() if as_card(c).is_private}


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=2)
def _cached_dataset(path: str, mtime: float):
    return load_dataset(path)


def explorer_dataset(path: str | None = None):
    """The dataset for the Dataset explorer (cached per file and modification time).

    Args:
        path: a dataset file or folder; None uses :func:`fer_core.data.datasets.default_data_path`.

    Returns:
        ``(FERDataset or None, message or None)``: a missing or malformed dataset gives a message
        that says how to get one instead of raising.
    """
    p = Path(path).expanduser() if path else default_data_path()
    if not p.exists():
        return None, (
            f"No dataset at `{p}`. FER2013 with the FER+ votes ships as `../shared/data/fer2013.npz` on the "
            "project's machines; elsewhere, get Kaggle's `fer2013.csv` (FER2013 challenge, research use only) or "
            "its image-folder copy, and Microsoft's `fer2013new.csv` (FER+ votes, MIT), then point this page "
            "(or `FER_DATA`) at the file."
        )
    try:
        return _cached_dataset(str(p), p.stat().st_mtime), None
    except DatasetError as exc:
        return None, f"Cannot read this dataset: {exc}"


# --- live benchmark ------------------------------------------------------------------------------------------------

#: The most seconds one live benchmark may take on the server (models x budget per model).
LIVE_BENCH_MAX_S = 120.0


class BenchmarkBusy(RuntimeError):
    """Another session of this server is running a live benchmark; try again when it is done."""


@st.cache_resource
def bench_lock() -> threading.Lock:
    """One lock per server process, so that at most one session runs a live benchmark at a time."""
    return threading.Lock()


def live_benchmark(paths: list[str], budget_s: float, progress=None) -> dict:
    """:func:`fer_core.results.speed.measure_models` on the cached checkpoints and detector, on one torch thread.

    At most one session runs it at a time (:func:`bench_lock`, never waited for), and it runs in the
    calling session's own script thread on one core, so the other sessions keep being served.

    Args:
        paths: checkpoint folders (keys of :func:`available_checkpoints`).
        budget_s: seconds per model (> 0); ``len(paths) * budget_s`` must not exceed
            :data:`LIVE_BENCH_MAX_S`.
        progress: optional ``progress(fraction, text)`` callback.

    Returns:
        ``{"machine": fer_core.results.speed.machine_info() (threads = 1), "results": [measure_model's dict, ...]}``.

    Raises:
        BenchmarkBusy: another session is running a benchmark.
        ValueError: no model, a budget that is not positive, or a run longer than LIVE_BENCH_MAX_S.
    """
    if not paths:
        raise ValueError("choose at least one model to benchmark")
    if not budget_s > 0:
        raise ValueError(f"the time budget must be a positive number of seconds, got {budget_s}")
    if len(paths) * budget_s > LIVE_BENCH_MAX_S:
        raise ValueError(f"{len(paths)} models x {budget_s:g} s is more than {LIVE_BENCH_MAX_S:g} s: "
                         "choose fewer models or a smaller budget")
    lock = bench_lock()
    if not lock.acquire(blocking=False):
        raise BenchmarkBusy("another session is running a benchmark on this server; try again when it is done")
    try:
        ckpts = [cached_checkpoint(p) for p in paths]
        results = measure_models(ckpts, budget_s, threads=1, progress=progress, detector=cached_detector())
        return {"machine": {**machine_info(), "threads": 1}, "results": results}
    finally:
        lock.release()


def webrtc_configuration() -> dict:
    """:func:`fer_core.app.webrtc.rtc_configuration` from the environment and the ``[webrtc]`` section of
    ``.streamlit/secrets.toml`` (absent secrets are fine: no ICE server, which suits localhost).

    Raises:
        ValueError: as ``rtc_configuration`` (a malformed STUN/TURN setting).
    """
    try:
        section = st.secrets.get("webrtc") if "webrtc" in st.secrets else None
    except (FileNotFoundError, OSError, KeyError, ValueError):  # no secrets.toml, or an unreadable one
        section = None
    return rtc_configuration(secrets=dict(section) if section else None)


def session_live_analyzer(checkpoint: Checkpoint, detector, **settings):
    """This browser session's :class:`fer_core.inference.live.LiveAnalyzer` (created on first use and kept in
    ``st.session_state``, so every session has its own face state and result queue), set to
    ``checkpoint``, ``detector`` and ``settings`` (``LiveAnalyzer.configure``'s keywords)."""
    analyzer = st.session_state.get("_live_analyzer")
    if analyzer is None:
        analyzer = LiveAnalyzer(checkpoint, detector, **settings)
        st.session_state["_live_analyzer"] = analyzer
    else:
        analyzer.configure(checkpoint=checkpoint, detector=detector, **settings)
    return analyzer


def session_live_timeline():
    """This browser session's :class:`fer_core.inference.live.LiveTimeline` (kept in ``st.session_state``)."""
    return st.session_state.setdefault("_live_timeline", LiveTimeline())
