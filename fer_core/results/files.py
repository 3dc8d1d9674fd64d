"""The one owner of every file under ``checkpoints/results/``: its path, its environment override, its
columns, one reader and one writer (atomic: a temporary file beside it, then ``os.replace``).

=====================  ==========================  ==================  =====================================
file                   written by                  override            read by
=====================  ==========================  ==================  =====================================
``architectures.csv``  ``compare-archs``           (none)              the README
``sweep.csv``          ``sweep``                   $FER_SWEEP_RESULTS  Privacy and Compare pages, the README
``reference.csv``      ``sweep --reference``       $FER_REFERENCE_     Privacy page, the README
                                                   RESULTS
``audit.csv``          ``audit``                   $FER_AUDIT_RESULTS  Audit and Benchmarks pages, the README
``audit_roc.json``     ``audit``                   beside audit.csv    Audit page
``audit_twins.csv``    ``audit --twins K``         $FER_TWIN_AUDIT_    Audit and Benchmarks pages, the README
                                                   RESULTS
``audit_twins_roc``    ``audit --twins K``         beside              Audit page
``.json``                                          audit_twins.csv
``speed.csv``          ``bench --write``           $FER_SPEED_RESULTS  Benchmarks page, the README
``peers.csv``          ``benchmarks/bench_peers``  $FER_PEERS_RESULTS  Benchmarks page, the README
                       ``.py --write``
=====================  ==========================  ==================  =====================================

The app reads through the ``*_path()`` functions (environment first); the README and the commands use
the constants, so the generated text never depends on the environment. The one exception is
``bench_peers.py --write``, a script with no path option: it writes to :func:`peers_path`.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from fer_core import EMOTIONS
from fer_core.models.checkpoint import CHECKPOINT_DIR

RESULTS_DIR = CHECKPOINT_DIR / "results"
ARCH_RESULTS = RESULTS_DIR / "architectures.csv"
SWEEP_RESULTS = RESULTS_DIR / "sweep.csv"
REFERENCE_RESULTS = RESULTS_DIR / "reference.csv"
AUDIT_RESULTS = RESULTS_DIR / "audit.csv"
#: Name of the ROC points file; it always lies beside its ``audit.csv``.
AUDIT_ROC_NAME = "audit_roc.json"
AUDIT_ROC = RESULTS_DIR / AUDIT_ROC_NAME
SPEED_RESULTS = RESULTS_DIR / "speed.csv"
TWIN_AUDIT_RESULTS = RESULTS_DIR / "audit_twins.csv"
TWIN_AUDIT_ROC_NAME = "audit_twins_roc.json"
PEERS_RESULTS = RESULTS_DIR / "peers.csv"

#: Environment variables that point the app at other result files (tests, other result sets).
SWEEP_ENV = "FER_SWEEP_RESULTS"
REFERENCE_ENV = "FER_REFERENCE_RESULTS"
AUDIT_ENV = "FER_AUDIT_RESULTS"
SPEED_ENV = "FER_SPEED_RESULTS"
TWIN_AUDIT_ENV = "FER_TWIN_AUDIT_RESULTS"
PEERS_ENV = "FER_PEERS_RESULTS"

ARCH_COLUMNS = [
    "arch", "model_args", "parameters", "macs", "epochs", "batch_size", "lr", "train_seconds",
    "samples_per_s", "best_epoch", "publictest_accuracy", "privatetest_accuracy",
    "privatetest_macro_f1", "privatetest_accuracy_dedup", "privatetest_accuracy_flip_tta",
    "privatetest_ece", "command",
]
SWEEP_COLUMNS = [
    "method", "epsilon", "target_epsilon", "delta", "accountant", "noise_multiplier", "max_grad_norm",
    "batch_size", "sample_rate", "epochs", "steps", "trainable", "private_rows", "public_rows",
    "publictest_accuracy", "privatetest_accuracy", "privatetest_macro_f1",
    *[f"recall_{e}" for e in EMOTIONS], "train_seconds", "run", "checkpoint", "command",
]
#: Columns of ``reference.csv``: one non-private reference per private method (no noise, no clipping).
REFERENCE_COLUMNS = [
    "method", "arch", "trainable", "noise_multiplier", "max_grad_norm", "batch_size", "lr", "epochs", "train_rows",
    "publictest_accuracy", "privatetest_accuracy", "privatetest_macro_f1", *[f"recall_{e}" for e in EMOTIONS],
    "train_seconds", "run", "command",
]
AUDIT_COLUMNS = ["model", "private", "method", "claimed_epsilon", "delta", "attack", "auc", "tpr_at_1pct_fpr",
                 "tpr_at_0.1pct_fpr", "balanced_accuracy", "epsilon_lower_bound", "n_members", "n_nonmembers",
                 "references", "seconds", "blind_auc", "blind_auc_low", "blind_auc_high", "blind_shifted"]
#: Numeric columns of ``audit.csv`` (:func:`read_audit` gives floats or None).
AUDIT_FLOATS = ("claimed_epsilon", "delta", "auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "balanced_accuracy",
                "epsilon_lower_bound", "n_members", "n_nonmembers", "references", "seconds", "blind_auc",
                "blind_auc_low", "blind_auc_high")
_AUDIT_COUNTS = ("n_members", "n_nonmembers", "references")
#: Columns of ``audit_twins.csv`` (one row per audited model and attack).
TWIN_AUDIT_COLUMNS = ["model", "private", "method", "claimed_epsilon", "delta", "attack", "twins", "n_rows", "auc",
                      "auc_low", "auc_high", "tpr_at_1pct_fpr", "tpr_at_1pct_fpr_low", "tpr_at_1pct_fpr_high",
                      "tpr_at_0.1pct_fpr", "tpr_at_0.1pct_fpr_low", "tpr_at_0.1pct_fpr_high",
                      "balanced_accuracy", "epsilon_lower_bound",
                      "blind_auc", "blind_auc_low", "blind_auc_high", "blind_shifted", "twin_overrides", "seconds",
                      "command"]
#: The speed figures (faces per second, faces per second, milliseconds).
FIGURES = ("faces_per_s_batch1", "faces_per_s_batch64", "photo_ms")
MACHINE_FIELDS = ("cpu", "cpu_count", "threads", "torch", "python", "platform")
SPEED_COLUMNS = ["model", *FIGURES, "faces_in_photo", "budget_s", *MACHINE_FIELDS, "measured", "command"]
_SPEED_NUMBERS = {*FIGURES, "faces_in_photo", "budget_s", "cpu_count", "threads"}
#: The figures of ``peers.csv``: faces per second at batch 1 and 64, and their ratio to the peer ``fer``'s timed
#: in alternating blocks with each model in the same run (> 1: faster than fer).
PEERS_FIGURES = ("faces_per_s_batch1", "faces_per_s_batch64", "ratio_to_fer_batch1", "ratio_to_fer_batch64")
#: Columns of ``peers.csv`` (one row per model of one ``bench_peers.py`` run, the peer ``fer`` included).
PEERS_COLUMNS = ["model", "private", "peer", "runtime", *PEERS_FIGURES, "privatetest_accuracy", "budget_s", "faces",
                 *MACHINE_FIELDS, "measured", "command"]
_PEERS_NUMBERS = {*PEERS_FIGURES, "privatetest_accuracy", "budget_s", "cpu_count", "threads"}
_PEERS_BOOLS = ("private", "peer")
#: How ``peers.csv`` is produced (the extras, then the run).
PEERS_COMMAND = "pip install -r requirements-bench.txt --no-deps && python benchmarks/bench_peers.py --write"


def finite_or_none(v) -> float | None:
    """``float(v)`` if that is a finite number, else None (CSV cells: empty, "nan", text)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# --- plumbing ------------------------------------------------------------------------------------------------------


def _env_path(env: str, default: Path) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser() if value else default


def _replace_atomically(path: Path, write) -> None:
    """``write(file)`` into ``<path>.tmp`` (folder created), then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        write(fh)
    os.replace(tmp, path)


def _write_csv(path: str | os.PathLike, columns: list[str], rows: Iterable[dict]) -> None:
    def write(fh) -> None:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)

    _replace_atomically(Path(path), write)


def _read_csv(path: str | os.PathLike) -> list[dict] | None:
    """The CSV's rows as string dicts, or None when it is missing or unreadable."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


# --- architectures.csv ---------------------------------------------------------------------------------------------


def read_architectures(path: str | os.PathLike = ARCH_RESULTS) -> list[dict]:
    """Rows of the architecture comparison (columns :data:`ARCH_COLUMNS`, cells as written: strings); [] if none."""
    return _read_csv(path) or []


def write_architectures(rows: list[dict], path: str | os.PathLike = ARCH_RESULTS) -> None:
    """(Re)write the architecture comparison with ``rows`` (dicts with :data:`ARCH_COLUMNS`), in order."""
    _write_csv(path, ARCH_COLUMNS, rows)


# --- sweep.csv -----------------------------------------------------------------------------------------------------


def sweep_path() -> Path:
    """Where the app reads the sweep: ``$FER_SWEEP_RESULTS``, else :data:`SWEEP_RESULTS`."""
    return _env_path(SWEEP_ENV, SWEEP_RESULTS)


def read_sweep(path: str | os.PathLike = SWEEP_RESULTS) -> list[dict]:
    """Rows of ``sweep.csv`` as dicts (numbers as ints or floats where they parse); [] if there is none."""
    return _read_numbers(path)


def _read_numbers(path: str | os.PathLike) -> list[dict]:
    """A CSV's rows as dicts, cells as ints or floats where they parse (so a rewrite keeps ``7177`` an int); [] when
    it is missing or unreadable."""
    rows = _read_csv(path) if Path(path).exists() else None
    return [{k: _number(v) for k, v in r.items()} for r in rows or []]


def _number(cell):
    """``"7177"`` -> 7177, ``"0.5"`` -> 0.5, anything else as it is."""
    for kind in (int, float):
        try:
            return kind(cell)
        except (TypeError, ValueError):
            pass
    return cell


def sweep_rows() -> list[dict]:
    """Rows of the sweep CSV at :func:`sweep_path` (see :func:`read_sweep`); [] if there is none."""
    return read_sweep(sweep_path())


def write_sweep(rows: Iterable[dict], path: str | os.PathLike = SWEEP_RESULTS) -> None:
    """(Re)write ``sweep.csv`` with ``rows`` (dicts with :data:`SWEEP_COLUMNS`), ordered by method and target ε."""
    _write_csv(path, SWEEP_COLUMNS, sorted(rows, key=lambda r: (r["method"], float(r["target_epsilon"]))))


# --- reference.csv -------------------------------------------------------------------------------------------------


def reference_path() -> Path:
    """Where the app reads the non-private references: ``$FER_REFERENCE_RESULTS``, else :data:`REFERENCE_RESULTS`."""
    return _env_path(REFERENCE_ENV, REFERENCE_RESULTS)


def read_reference(path: str | os.PathLike = REFERENCE_RESULTS) -> list[dict]:
    """Rows of ``reference.csv`` (numbers as ints or floats where they parse); [] if there is none."""
    return _read_numbers(path)


def reference_rows() -> list[dict]:
    """Rows of the reference CSV at :func:`reference_path`; [] if there is none."""
    return read_reference(reference_path())


def write_reference(rows: Iterable[dict], path: str | os.PathLike = REFERENCE_RESULTS) -> None:
    """(Re)write ``reference.csv`` with ``rows`` (dicts with :data:`REFERENCE_COLUMNS`), one per method, by method."""
    _write_csv(path, REFERENCE_COLUMNS, sorted(rows, key=lambda r: r["method"]))


# --- audit.csv and audit_roc.json ----------------------------------------------------------------------------------


def audit_path() -> Path:
    """Where the app reads the membership-inference audit: ``$FER_AUDIT_RESULTS``, else :data:`AUDIT_RESULTS`
    (the ROC points are read from :func:`audit_roc_path` beside it)."""
    return _env_path(AUDIT_ENV, AUDIT_RESULTS)


def audit_roc_path(csv_path: str | os.PathLike | None = None) -> Path:
    """The ROC points file beside an ``audit.csv`` (default :func:`audit_path`)."""
    return Path(csv_path if csv_path is not None else audit_path()).with_name(AUDIT_ROC_NAME)


def read_audit(path: str | os.PathLike | None = None) -> list[dict] | None:
    """Rows of an ``audit.csv`` (default :func:`audit_path`), typed.

    Returns:
        One dict per row (columns :data:`AUDIT_COLUMNS`) with ``private`` and ``blind_shifted`` bools, the
        :data:`AUDIT_FLOATS` floats (None where empty or not a number; so ``claimed_epsilon`` is None
        for a non-private model) and ``model``/``method``/``attack`` stripped strings; malformed rows
        are kept, the reader decides what to skip. None when the file is missing or unreadable.
    """
    raw_rows = _read_csv(path if path is not None else audit_path())
    if raw_rows is None:
        return None
    rows = []
    for raw in raw_rows:
        row = {k: raw.get(k) for k in raw if isinstance(k, str)}
        for k in ("model", "method", "attack"):
            row[k] = (raw.get(k) or "").strip()
        row["private"] = (raw.get("private") or "").strip().lower() in ("true", "1", "yes")
        row["blind_shifted"] = (raw.get("blind_shifted") or "").strip().lower() in ("true", "1", "yes")
        for k in AUDIT_FLOATS:
            row[k] = finite_or_none(raw.get(k))
        rows.append(row)
    return rows


def _roc_points(curve) -> dict | None:
    """``{"fpr": [...], "tpr": [...]}`` as floats, or None if ``curve`` is not two equal-length number lists."""
    if not isinstance(curve, dict) or not isinstance(curve.get("fpr"), list) or not isinstance(curve.get("tpr"), list):
        return None
    fpr = [finite_or_none(x) for x in curve["fpr"]]
    tpr = [finite_or_none(x) for x in curve["tpr"]]
    if len(fpr) != len(tpr) or not fpr or None in fpr or None in tpr:
        return None
    return {"fpr": fpr, "tpr": tpr}


def read_audit_roc(path: str | os.PathLike | None = None) -> dict:
    """``{model: {attack: {"fpr": [...], "tpr": [...]}}}`` from an ``audit_roc.json`` (default
    :func:`audit_roc_path`), keeping only well-formed curves; ``{}`` when it is missing or unreadable."""
    try:
        data = json.loads(Path(path if path is not None else audit_roc_path()).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    rocs: dict = {}
    for model, attacks in (data.items() if isinstance(data, dict) else []):
        if not isinstance(attacks, dict):
            continue
        curves = {a: c for a, c in ((a, _roc_points(c)) for a, c in attacks.items()) if c is not None}
        if curves:
            rocs[str(model)] = curves
    return rocs


def audit_results(path: str | os.PathLike | None = None) -> tuple[list[dict], dict]:
    """The audit written by ``python -m fer_core audit`` (default :func:`audit_path`; not cached: tiny files).

    Returns:
        ``(rows, rocs)``: :func:`read_audit`'s rows and :func:`read_audit_roc`'s curves from the file
        beside the CSV. ``([], {})`` when the CSV is missing or unreadable; ``{}`` for ``rocs`` when the
        JSON is.
    """
    csv_path = Path(path) if path is not None else audit_path()
    rows = read_audit(csv_path)
    if rows is None:
        return [], {}
    return rows, read_audit_roc(audit_roc_path(csv_path))


def _audit_cell(key: str, value):
    if value is None:
        return ""
    if key in _AUDIT_COUNTS and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def write_audit(rows: Iterable[dict], rocs: dict, path: str | os.PathLike = AUDIT_RESULTS) -> None:
    """(Re)write an ``audit.csv`` (rows ordered by model and attack; None as an empty cell, counts as
    integers) and the ROC points file beside it (:func:`audit_roc_path`)."""
    out = [{k: _audit_cell(k, r.get(k)) for k in AUDIT_COLUMNS}
           for r in sorted(rows, key=lambda r: (r["model"], r["attack"]))]
    _write_csv(path, AUDIT_COLUMNS, out)
    _replace_atomically(audit_roc_path(path), lambda fh: fh.write(json.dumps(rocs) + "\n"))


# --- audit_twins.csv ------------------------------------------------------------------------------------------------


def twin_audit_path() -> Path:
    """Where the committed twin-audit figures are read: ``$FER_TWIN_AUDIT_RESULTS``, else :data:`TWIN_AUDIT_RESULTS`."""
    return _env_path(TWIN_AUDIT_ENV, TWIN_AUDIT_RESULTS)


def read_twin_audit(path: str | os.PathLike | None = None) -> list[dict]:
    """Rows of ``audit_twins.csv`` (default :func:`twin_audit_path`; numbers as floats where they parse,
    ``blind_shifted`` as bool); [] if none."""
    rows = _read_csv(path if path is not None else twin_audit_path()) or []
    for r in rows:
        for k, v in r.items():
            if k == "blind_shifted":
                r[k] = v == "True"
            elif k not in ("model", "method", "attack", "twin_overrides", "command", "private"):
                r[k] = finite_or_none(v)
        r["private"] = r.get("private") == "True"
    return rows


def twin_audit_roc_path(csv_path: str | os.PathLike | None = None) -> Path:
    """The ROC points file beside an ``audit_twins.csv`` (default :func:`twin_audit_path`)."""
    return Path(csv_path if csv_path is not None else twin_audit_path()).with_name(TWIN_AUDIT_ROC_NAME)


def write_twin_audit(rows: Iterable[dict], path: str | os.PathLike = TWIN_AUDIT_RESULTS,
                     rocs: dict | None = None) -> list[dict]:
    """Add or replace rows of ``audit_twins.csv`` (one per model and attack; other models' rows kept), and
    merge ``rocs`` (``{model: {attack: {"fpr": [...], "tpr": [...]}}}``) into the ROC file beside it
    (:func:`twin_audit_roc_path`).

    Returns:
        Every row now in the file, ordered by model and attack.
    """
    rows = list(rows)
    # Other models' rows as the file has them (cells as text): a rewrite keeps them byte for byte (``3`` twins, not
    # ``3.0``).
    merged = {(r["model"], r["attack"]): r for r in (_read_csv(path) or [])}
    merged.update({(r["model"], r["attack"]): r for r in rows})
    out = [merged[k] for k in sorted(merged)]
    _write_csv(path, TWIN_AUDIT_COLUMNS, out)
    if rocs:
        curves = read_audit_roc(twin_audit_roc_path(path))
        for model, by_attack in rocs.items():
            curves.setdefault(model, {}).update(by_attack)
        _replace_atomically(twin_audit_roc_path(path), lambda fh: fh.write(json.dumps(curves) + "\n"))
    return out


def twin_audit_results(path: str | os.PathLike | None = None) -> tuple[list[dict], dict]:
    """``(rows, rocs)`` of an ``audit_twins.csv`` (default :func:`twin_audit_path`) and the ROC points beside
    it (``[], {}`` when missing)."""
    rows = read_twin_audit(path)
    return rows, (read_audit_roc(twin_audit_roc_path(path)) if rows else {})


# --- speed.csv -----------------------------------------------------------------------------------------------------


def speed_path() -> Path:
    """Where the committed speed figures are read: ``$FER_SPEED_RESULTS``, else :data:`SPEED_RESULTS`."""
    return _env_path(SPEED_ENV, SPEED_RESULTS)


def read_speed(path: str | os.PathLike | None = None) -> list[dict]:
    """Rows of a speed CSV (columns :data:`SPEED_COLUMNS`), default :func:`speed_path`.

    Returns:
        One dict per row with the :data:`FIGURES`, ``budget_s``, ``cpu_count``, ``threads`` and
        ``faces_in_photo`` as floats (None where empty or not a number) and the rest as stripped
        strings; ``[]`` when the file is missing or unreadable.
    """
    raw = _read_csv(path if path is not None else speed_path()) or []
    return [{k: finite_or_none(r.get(k)) if k in _SPEED_NUMBERS else (r.get(k) or "").strip() for k in SPEED_COLUMNS}
            for r in raw]


def write_speed(results: list[dict], machine: dict, path: str | os.PathLike = SPEED_RESULTS,
                command: str = "") -> list[dict]:
    """Write :func:`fer_core.results.speed.measure_model` results to a speed CSV, replacing the rows of the
    same models.

    Rows of other models already in the file are kept as they are written (each row names its own machine), and
    rows are ordered by model name.

    Args:
        results: dicts from ``measure_model``.
        machine: :func:`fer_core.results.speed.machine_info` of the machine that measured them.
        path: the CSV to (re)write (its folder is created).
        command: the command line, recorded in each row.

    Returns:
        Every row now in the file (as written, strings and numbers).
    """
    measured = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = {r["model"]: {
        "model": r["model"], **{k: round(float(r[k]), 1) for k in FIGURES},
        "faces_in_photo": r.get("faces_in_photo", ""), "budget_s": r.get("budget_s", ""),
        **{k: machine.get(k, "") for k in MACHINE_FIELDS}, "threads": r.get("threads", machine.get("threads", "")),
        "measured": measured, "command": command,
    } for r in results}
    kept = [r for r in _read_csv(path) or [] if (r.get("model") or "").strip() not in new]  # cells as written
    rows = sorted([*kept, *new.values()], key=lambda r: r["model"])
    _write_csv(path, SPEED_COLUMNS, rows)
    return rows


# --- peers.csv -----------------------------------------------------------------------------------------------------


def peers_path() -> Path:
    """Where the peer comparison is read and ``bench_peers.py --write`` writes it: ``$FER_PEERS_RESULTS``, else
    :data:`PEERS_RESULTS`."""
    return _env_path(PEERS_ENV, PEERS_RESULTS)


def _true(v) -> bool:
    return v is True or str(v or "").strip().lower() in ("true", "1", "yes")


def read_peers(path: str | os.PathLike | None = None) -> list[dict]:
    """Rows of a ``peers.csv`` (columns :data:`PEERS_COLUMNS`), default :func:`peers_path`.

    Returns:
        One dict per row: ``private`` and ``peer`` (the row is the peer package ``fer`` itself) as bools;
        the :data:`PEERS_FIGURES` (faces/s; ratios to fer's faces/s timed in alternation with each model in the
        same run), ``privatetest_accuracy`` (0-1), ``budget_s`` (seconds per model and batch size), ``cpu_count``
        and ``threads`` as floats (None where empty or not a number); the rest (``model``, ``runtime``:
        ``"onnx"``, ``"torch"`` or ``"tflite"``, ``faces``: which faces were timed, the machine fields,
        ``measured``: UTC ISO time, ``command``) as stripped strings. ``[]`` when the file is missing or unreadable.
    """
    raw = _read_csv(path if path is not None else peers_path()) or []
    return [{k: _true(r.get(k)) if k in _PEERS_BOOLS
             else finite_or_none(r.get(k)) if k in _PEERS_NUMBERS else (r.get(k) or "").strip()
             for k in PEERS_COLUMNS} for r in raw]


def write_peers(rows: Iterable[dict], machine: dict, path: str | os.PathLike | None = None,
                command: str = "") -> list[dict]:
    """(Re)write a ``peers.csv`` with one run of ``benchmarks/bench_peers.py``, replacing the whole file (only
    ratios measured in one run are claims, so no row of an earlier run is kept).

    Args:
        rows: one dict per model with ``model``, ``private``, ``peer`` (bools), ``runtime``, the
            :data:`PEERS_FIGURES`, ``privatetest_accuracy`` (0-1 or None), ``budget_s`` and ``faces``;
            missing keys and None are written as empty cells.
        machine: :func:`fer_core.results.speed.machine_info` of the machine that ran them (with the
            ``threads`` used).
        path: the CSV to (re)write (its folder is created); default :func:`peers_path`.
        command: the command line, recorded in each row.

    Returns:
        Every row now in the file, the peer first, then by model name (as written: strings and numbers).
    """
    measured = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = []
    for r in rows:
        row = {k: "" if r.get(k) is None else r[k] for k in PEERS_COLUMNS}
        row.update({k: _true(r.get(k)) for k in _PEERS_BOOLS})
        row.update({k: "" if machine.get(k) is None else machine[k] for k in MACHINE_FIELDS})
        row.update(measured=measured, command=command)
        out.append(row)
    out.sort(key=lambda r: (not r["peer"], str(r["model"])))
    _write_csv(path if path is not None else peers_path(), PEERS_COLUMNS, out)
    return out
