"""The ``python -m fer_core`` command line. Each sub-command wraps one library function.

Errors the user can fix (missing dataset, corrupt checkpoint, bad image) print one line to stderr
and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fer_core.audit.membership import add_blind_baselines, run_audit
from fer_core.audit.twins import run_twin_audit
from fer_core.cli_convert import DATA_HELP, add_convert_commands, run_convert
from fer_core.data.datasets import DatasetError, load_dataset
from fer_core.data.images import ImageError, encode_png
from fer_core.evaluation.evaluate import dataset_for_model, evaluate_split
from fer_core.inference.detect import FaceDetector
from fer_core.inference.pipeline import analyze_photo, load_face_image
from fer_core.inference.runtime import RUNTIMES, fast, set_inference_threads
from fer_core.inference.video import VideoError, analyze_video
from fer_core.models.architectures import ALL_ARCHITECTURES, ARCHITECTURES
from fer_core.models.checkpoint import CHECKPOINT_DIR, CheckpointError, list_checkpoints, load_checkpoint
from fer_core.models.predict import classify_faces, compiled
from fer_core.privacy.accounting import DP_METHODS
from fer_core.results.architectures import compare_architectures
from fer_core.results.files import ARCH_RESULTS, REFERENCE_RESULTS, SPEED_RESULTS, SWEEP_RESULTS, write_speed
from fer_core.results.report import README, update_readme
from fer_core.results.speed import describe_machine, machine_info, measure_models
from fer_core.results.sweep import EPSILONS, RECIPES, run_references, run_sweep
from fer_core.training.config import TrainConfig, add_config_arguments, config_from_arguments, json_object_argument
from fer_core.training.distributed import launched_rank
from fer_core.training.lifecycle import main as train_main


def _command_line() -> str:
    return "python -m fer_core " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train (or resume) a model, ordinary or differentially private, and export a checkpoint",
        description="Train on Training, choose on PublicTest, evaluate PrivateTest once. "
        "Re-running with the same --out resumes after the last finished epoch. With --dp-method the "
        "run is differentially private (DP-SGD, Opacus): end-to-end 'dp-sgd', 'scatternet' (DP on fixed "
        "scattering features; use --arch scatternet), 'two-stage' (DP fine-tuning of a stage-1 model "
        "trained with --train-rows public, given by --init-from) or 'public-features' (a DP linear head on "
        "the frozen features of facex's public MobileNetV2, and of SFace's with --model-args "
        "'{\"sface_features\": [\"conv_13\"]}': --arch facex --trainable head; features cached "
        "in runs/features/, standardised with PublicTest statistics) or 'public-finetune' (the same, and DP also "
        "fine-tunes copies of facex's last blocks: --trainable last-block --model-args "
        "'{\"finetune_blocks\": 3, \"finetune_params\": \"bias\"}'). Runs unchanged under torchrun "
        "(data-parallel: DistributedDataParallel, or Opacus's distributed DP-SGD; --batch-size is the "
        "global batch; rank 0 writes the files), e.g. "
        "'torchrun --standalone --nproc_per_node 2 -m fer_core train ...'. Every flag is a field of "
        "fer_core.training.config.TrainConfig.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_config_arguments(p)


def _run_train(a: argparse.Namespace) -> int:
    result = train_main(config_from_arguments(a), command=_command_line())
    if launched_rank() != 0:  # under torchrun: rank 0 reports for the run
        return 0
    summary = {"out": result["out"], "finished": result["finished"], "best": result["best"],
               "checkpoint": result["checkpoint"]}
    if result.get("epsilon") is not None:
        summary["epsilon"] = result["epsilon"]
    if result["metrics"]:
        summary["accuracy"] = {s: m["accuracy"] for s, m in result["metrics"].items()}
    print(json.dumps(summary, indent=2))
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a checkpoint on a dataset split",
        description="Accuracy, macro-F1, per-class precision/recall/F1, confusion matrix, "
        "negative-vs-other view and ECE of a checkpoint on one split. With a .npz that has no "
        "'usage' key, all rows whose label is not -1 are evaluated, on the classes present.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", help="checkpoint folder or name under checkpoints/ (default: the shipped model)")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--split", default="PrivateTest",
                   help="Training, PublicTest or PrivateTest (or the dataset's own split names)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-tta", action="store_true", help="skip the flip-averaged figure")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--runtime", choices=list(RUNTIMES), default="torch",
                   help="classifier runtime: torch (the reference the model cards were measured with) or onnx "
                   "(ONNX Runtime)")


def _run_evaluate(a: argparse.Namespace) -> int:
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    ckpt = fast(load_checkpoint(a.checkpoint), a.runtime, threads=max(a.threads, 1))
    ds, note = dataset_for_model(load_dataset(a.data), ckpt.card.label_set)
    if note:
        print(f"note: {note}", file=sys.stderr)
    split = a.split
    if split not in ds.splits and ds.splits == ["All"]:
        split = "All"  # a generic .npz without a 'usage' key: evaluate every labelled row
    pre = ckpt.card.preprocessing
    report = evaluate_split(
        ckpt.model, ds, split, class_names=ckpt.classes, mean=pre.mean, std=pre.std, flip_tta=not a.no_tta,
    )
    report = {"checkpoint": str(ckpt.path), "data": ds.source, **report}
    if a.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{ckpt.name} on {ds.source} [{split}], n = {report['n']}")
    print(f"  accuracy {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}   ECE {report['ece']:.4f}")
    if "accuracy_dedup" in report:
        print(f"  accuracy without Training duplicates {report['accuracy_dedup']:.4f} (n = {report['n_dedup']})")
    if "accuracy_flip_tta" in report:
        print(f"  accuracy with flip averaging {report['accuracy_flip_tta']:.4f}")
    nv = report["negative_vs_other"]
    print(f"  negative vs other: F1 {nv['f1']:.4f}, recall {nv['recall']:.4f}, AUC {nv['auc'] or float('nan'):.4f}")
    print(f"  {'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for name, m in report["per_class"].items():
        print(f"  {name:<10}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['support']:>9d}")
    return 0


VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v"}


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="emotion of every face in photos and videos",
        description="Detect every face in each photo or video, classify its emotion and print one record "
        "per face (JSON: file, box [x, y, w, h], label, confidence, probabilities, negative; videos add "
        "t, frame and track). Inputs are read into memory; nothing is written unless --blur is given.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="PHOTO_OR_VIDEO", help="image or video files")
    p.add_argument("--checkpoint", help="checkpoint folder or name (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print a JSON list of records")
    p.add_argument("--blur", metavar="OUT",
                   help="also write the annotated output with faces blurred: a file for one input, else a folder")
    p.add_argument("--detector", default="yunet", choices=["yunet", "haar"])
    p.add_argument("--every", type=int, default=5, help="videos: analyse every n-th frame")
    p.add_argument("--faces", action="store_true", help="inputs are already cropped faces (no detection)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the classifier first (~20-40 s once, then ~1.5x faster batches: long videos, "
                   "many photos)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch, OpenCV and ONNX Runtime threads; 1 (the default) holds its speed when another process "
                   "busies a core, "
                   "where torch's default of one thread per core collapses; 0: torch's default")
    p.add_argument("--runtime", choices=list(RUNTIMES), default="onnx",
                   help="classifier runtime: onnx (ONNX Runtime, about twice torch's speed on one face; torch "
                   "where a network does not export) or torch; --compile uses torch")


def _blur_target(out: str, src: str, n_inputs: int, suffix: str) -> Path:
    if n_inputs == 1 and Path(out).suffix:
        return Path(out)
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{Path(src).stem}_blurred{suffix}"


def _run_predict(a: argparse.Namespace) -> int:
    set_inference_threads(a.threads)
    ckpt = load_checkpoint(a.checkpoint)
    if a.compile:
        try:
            ckpt = compiled(ckpt)
        except RuntimeError as exc:
            raise SystemExit(f"error: {exc}") from None
    else:
        ckpt = fast(ckpt, a.runtime, threads=max(a.threads, 1))
    records: list[dict] = []
    failed = 0
    if a.faces:

        faces, names = [], []
        for path in a.inputs:
            try:
                faces.append(load_face_image(path))
                names.append(path)
            except ImageError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
        if faces:
            records = [{"file": n, **r} for n, r in zip(names, classify_faces(ckpt, np.stack(faces)), strict=True)]
    else:

        detector = FaceDetector(a.detector, threads=max(a.threads, 1))
        for path in a.inputs:
            p = Path(path)
            if not p.is_file():
                why = "is a folder, not an image" if p.is_dir() else "no such file"
                print(f"error: {path}: {why}", file=sys.stderr)
                failed += 1
                continue
            try:
                data = p.read_bytes()
            except OSError as exc:
                print(f"error: {path}: cannot be read ({exc.strerror or exc})", file=sys.stderr)
                failed += 1
                continue
            if p.suffix.lower() in VIDEO_SUFFIXES:
                try:
                    res = analyze_video(data, ckpt, detector, every_n=a.every, blur=True, encode=bool(a.blur))
                except VideoError as exc:
                    print(f"error: {path}: {exc}", file=sys.stderr)
                    failed += 1
                    continue
                records += [{"file": path, **{k: v for k, v in r.items() if not k.startswith("p_")},
                             "probabilities": {k[2:]: v for k, v in r.items() if k.startswith("p_")}}
                            for r in res.timeline]
                if a.blur and res.video:
                    _blur_target(a.blur, path, len(a.inputs), ".mp4").write_bytes(res.video)
                continue
            photo = analyze_photo(data, path, ckpt, detector, blur=True)
            if photo.error:
                print(f"error: {photo.error}", file=sys.stderr)
                failed += 1
                continue
            records += [{"file": path, **{k: v for k, v in r.items() if k != "landmarks"}} for r in photo.records]
            if a.blur:
                _blur_target(a.blur, path, len(a.inputs), ".png").write_bytes(encode_png(photo.annotated))
    if a.json:
        print(json.dumps(records, indent=2))
    else:
        for r in records:
            where = f" t={r['t']:.2f}s" if "t" in r else ""
            box = f" box={r['box']}" if "box" in r else ""
            flag = "  (negative)" if r["negative"] else ""
            print(f"{r['file']}{where}{box}: {r['label']} {r['confidence']:.2f}{flag}")
    return 2 if failed else 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare-archs",
        help="train cnn, resnet and fusion on the same recipe and budget; write the results CSV",
        description="Trains each architecture (its default arguments) with the same recipe and "
        "number of epochs, chooses each on PublicTest, evaluates PrivateTest, and writes "
        "checkpoints/results/architectures.csv. Resumable per architecture.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="runs/compare_archs", help="parent run folder")
    p.add_argument("--archs", nargs="+", default=list(ARCHITECTURES), choices=list(ALL_ARCHITECTURES))
    p.add_argument("--results", default=None, help="CSV to write (default checkpoints/results/architectures.csv)")
    add_config_arguments(p, groups=("recipe",), defaults=TrainConfig(epochs=6),
                         also=("data", "threads", "compile", "channels_last", "device", "init_from", "stop_after",
                               "progress"))


def _run_compare(a: argparse.Namespace) -> int:
    base = config_from_arguments(a, out=a.out)
    rows = compare_architectures(base, a.archs, a.results or ARCH_RESULTS, command=_command_line())
    print(json.dumps(rows, indent=2))
    return 0


def _add_sweep(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser(
        "sweep",
        help="train each private method at each target epsilon; write checkpoints/results/sweep.csv",
        description="For each method and target epsilon (delta 1e-5) trains a DP model with the method's "
        "recipe, chooses it on PublicTest, evaluates PrivateTest, writes a row of "
        "checkpoints/results/sweep.csv, and exports the best model per epsilon and privacy class (fully "
        "private: scatternet, dp-sgd; on public data: the others) to checkpoints/. Resumable: finished runs "
        "are read back. Recipes: "
        + "; ".join(f"{m}: {r['arch']}, {r['epochs']} epochs, batch {r['batch_size']}, lr {r['lr']}, "
                    f"max_grad_norm {r['max_grad_norm']}" for m, r in RECIPES.items()),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--methods", nargs="+", default=["scatternet", "two-stage"],
                   choices=list(DP_METHODS))
    p.add_argument("--epsilons", nargs="+", type=float, default=list(EPSILONS))
    p.add_argument("--epochs", type=int, help="override every recipe's epochs (e.g. a quick look)")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--out", default="runs/sweep", help="parent run folder (one resumable run per pair)")
    p.add_argument("--results", help="CSV to write (default checkpoints/results/sweep.csv)")
    p.add_argument("--no-export", action="store_true", help="do not export checkpoints")
    p.add_argument("--reference", action="store_true", help="instead of the epsilon runs, train each method's "
                   "non-private reference (its recipe without noise or clipping, learning rate chosen on PublicTest) "
                   "and write checkpoints/results/reference.csv (or --results)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true")


def _run_sweep(a: argparse.Namespace) -> int:

    base = TrainConfig(data=a.data, threads=a.threads, progress=not a.no_progress, channels_last=False)
    overrides = {"epochs": a.epochs} if a.epochs else None
    if a.reference:
        rows = run_references(base, a.methods, Path(a.results) if a.results else REFERENCE_RESULTS,
                              out_root=Path(a.out), overrides=overrides, command=_command_line())
        print(json.dumps([{k: r[k] for k in ("method", "lr", "publictest_accuracy", "privatetest_accuracy")}
                          for r in rows], indent=2))
        return 0
    rows = run_sweep(base, a.methods, a.epsilons, Path(a.results) if a.results else SWEEP_RESULTS,
                     out_root=Path(a.out), export_dir=None if a.no_export else CHECKPOINT_DIR,
                     overrides=overrides, command=_command_line())
    print(json.dumps([{k: r[k] for k in ("method", "epsilon", "publictest_accuracy", "privatetest_accuracy",
                                         "checkpoint")} for r in rows], indent=2))
    return 0


def _add_audit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="membership-inference audit of checkpoints; write checkpoints/results/audit.csv",
        description="Loss-threshold (Yeom et al. 2018) and offline RMIA (Zarifzadeh et al. 2024) attacks on "
        "balanced members / non-members; AUC, TPR at 1%% and 0.1%% FPR, balanced accuracy and an empirical "
        "epsilon lower bound (Clopper-Pearson). Results go to checkpoints/results/audit.csv, audit_roc.json "
        "and each model card.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", nargs="+", help="checkpoints to audit (default: every shipped one)")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--n", type=int, default=2000, help="members and non-members each")
    p.add_argument("--population", type=int, default=1000, help="RMIA population faces")
    p.add_argument("--references", type=int, default=4, help="RMIA reference models (0: loss attack only)")
    p.add_argument("--reference-epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", help="CSV to write (default checkpoints/results/audit.csv, or audit_twins.csv with "
                   "--twins)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--blind-only", action="store_true", help="fill the blind-baseline columns of the shifted audit's "
                   "audit.csv from its member and non-member sets (drawn again), without re-running its attacks")
    g = p.add_argument_group("audit twins (members and non-members of one distribution)")
    g.add_argument("--twins", type=int, default=0,
                   help="audit each model's recipe through K twins trained on random halves of its training rows "
                   "(LiRA with the other twins as shadow models, the loss attack, the blind baseline); 0: the "
                   "shifted audit of the shipped model (members from Training, non-members from the test splits)")
    g.add_argument("--twin-rows", type=int, default=10_000,
                   help="audited rows, sampled from the training rows (the blind baseline's AUC varies by about 0.015 "
                   "between random splits of 4,000 rows)")
    g.add_argument("--twin-epochs", type=int, help="train the twins for this many epochs instead of the recipe's "
                   "(recorded in the results)")
    g.add_argument("--twin-config", type=json_object_argument, default={},
                   help='JSON object of training-config fields changed for every twin, e.g. \'{"init_from": null}\' '
                   "to train from scratch a recipe that starts from the shipped model (recorded in the results)")


def _run_audit(a: argparse.Namespace) -> int:
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    paths = a.checkpoint or [str(p) for p in list_checkpoints()]
    if a.blind_only:
        rows = add_blind_baselines(a.results, a.data, n=a.n, n_population=a.population, seed=a.seed)
    elif a.twins:
        overrides = {**a.twin_config, **({"epochs": a.twin_epochs} if a.twin_epochs else {})}
        rows = run_twin_audit(paths, twins=a.twins, seed=a.seed, n_rows=a.twin_rows, data=a.data,
                              results=a.results, command=_command_line(), **overrides)
    else:
        rows = run_audit(paths, a.results, data=a.data, n=a.n, n_population=a.population, references=a.references,
                         reference_epochs=a.reference_epochs, seed=a.seed)
    print(json.dumps(rows, indent=2))
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="inference speed of checkpoints on this machine (faces/s at batch 1 and 64, photo ms)",
        description="Times each checkpoint on this machine within a time budget: classifier throughput at "
        "batch 1 and batch 64 (faces/s) and a 1 MP photo with one face end to end (ms; decode, YuNet, "
        "alignment, classification, annotation); medians after a warm-up. The app's Benchmarks page runs "
        "the same code. --write stores the figures in checkpoints/results/speed.csv (the committed "
        "figures the page and the README show).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", nargs="+", help="checkpoints to time (default: every shipped one)")
    p.add_argument("--budget-s", type=float, default=3.0,
                   help="seconds per checkpoint, shared by the three measurements")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the app uses 1)")
    p.add_argument("--runtime", choices=list(RUNTIMES), default="torch",
                   help="classifier runtime timed: torch (the committed speed.csv's) or onnx (what the app runs)")
    p.add_argument("--json", action="store_true", help="print one JSON object: machine and one result per model")
    p.add_argument("--write", action="store_true",
                   help="write the figures to --results (rows of other models are kept)")
    p.add_argument("--results", help="speed CSV for --write (default checkpoints/results/speed.csv)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _run_bench(a: argparse.Namespace) -> int:
    if not a.budget_s > 0:  # also rejects NaN
        raise ValueError(f"--budget-s must be a positive number of seconds, got {a.budget_s}")
    if a.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {a.threads}")
    paths = a.checkpoint or [str(p) for p in list_checkpoints()]
    if not paths:
        raise ValueError("no checkpoint to time: none in checkpoints/ and no --checkpoint given")
    ckpts = [fast(load_checkpoint(p), a.runtime, threads=a.threads) for p in paths]  # fail early on a bad path
    with tqdm(total=100, unit="%", disable=a.no_progress, file=sys.stderr,
              bar_format="{l_bar}{bar}| {elapsed}<{remaining}") as bar:
        def progress(fraction: float, text: str) -> None:
            bar.set_description(text, refresh=False)
            bar.update(round(100 * fraction) - bar.n)

        results = measure_models(ckpts, a.budget_s, a.threads, progress=progress)
    machine = {**machine_info(), "threads": a.threads}
    if a.write:
        write_speed(results, machine, a.results or SPEED_RESULTS, command=_command_line())
    if a.json:
        print(json.dumps({"machine": machine, "results": results}, indent=2))
        return 0
    print(f"machine: {describe_machine(machine)}")
    print(f"  {'model':<26}{'faces/s b1':>12}{'faces/s b64':>13}{'photo ms':>10}")
    for r in results:
        print(f"  {r['model']:<26}{r['faces_per_s_batch1']:>12.0f}{r['faces_per_s_batch64']:>13.0f}"
              f"{r['photo_ms']:>10.1f}")
    if a.write:
        print(f"written to {a.results or SPEED_RESULTS}")
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    sub.add_parser(
        "report",
        help="regenerate README.md's results section from the model cards and result files",
        description="Rewrites the text between the README's GENERATED markers.",
    )


def _run_report(a: argparse.Namespace) -> int:

    changed = update_readme()
    print(f"{README}: {'updated' if changed else 'already up to date'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fer_core",
        description="Facial emotion recognition: train, evaluate and run emotion classifiers.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_compare(sub)
    _add_sweep(sub)
    _add_audit(sub)
    _add_bench(sub)
    _add_report(sub)
    add_convert_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    handlers = {"train": _run_train, "evaluate": _run_evaluate, "predict": _run_predict,
                "compare-archs": _run_compare, "sweep": _run_sweep, "audit": _run_audit,
                "bench": _run_bench, "report": _run_report, "convert-facex": run_convert, "convert-sface": run_convert}
    try:
        return handlers[a.command](a)
    except (DatasetError, CheckpointError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
