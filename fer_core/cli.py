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

from fer_core.checkpoints import CheckpointError
from fer_core.data import DatasetError

DATA_HELP = "dataset (.npz, .csv or image folder); default $FER_DATA or ../shared/data/fer2013.npz"


def _command_line() -> str:
    return "python -m fer_core " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _add_train(sub: argparse._SubParsersAction) -> None:
    from fer_core.train import TrainConfig

    d = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train (or resume) a non-private model and export a checkpoint",
        description="Train on Training, choose on PublicTest, evaluate PrivateTest once. "
        "Re-running with the same --out resumes after the last finished epoch.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default=d.out, help="run folder holding the resumable state")
    p.add_argument("--export", help="checkpoint folder to write when done (e.g. checkpoints/my_model)")
    p.add_argument("--name", help="model name in the card (default: the export folder's name)")
    p.add_argument("--arch", default=d.arch, choices=["cnn", "resnet", "fusion"])
    p.add_argument("--model-args", default="{}",
                   help='JSON, e.g. \'{"widths": [32, 64, 128, 256], "blocks": [1, 1, 2, 1]}\'')
    _add_recipe_args(p, d)


def _add_recipe_args(p: argparse.ArgumentParser, d) -> None:
    """Options shared by ``train`` and ``compare-archs``."""
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--optimizer", default=d.optimizer, choices=["sgd", "adamw"])
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--ema-decay", type=float, default=d.ema_decay, help="per step; 0 disables EMA")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads (0: torch's default)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--device", default=d.device, choices=["auto", "cpu", "cuda"])
    p.add_argument("--limit-train", type=int, help="use only the first N training rows")
    p.add_argument("--init-from", help="start from this checkpoint's weights (fine-tuning; same architecture)")
    p.add_argument("--stop-after", type=int, help="stop after N epochs in this invocation (resume later)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _config_from_args(a: argparse.Namespace, **overrides):
    from fer_core.train import TrainConfig

    return TrainConfig(
        data=a.data, epochs=a.epochs, batch_size=a.batch_size, optimizer=a.optimizer, lr=a.lr,
        weight_decay=a.weight_decay, warmup_epochs=a.warmup_epochs,
        label_smoothing=a.label_smoothing, ema_decay=a.ema_decay, seed=a.seed, threads=a.threads,
        compile=a.compile, channels_last=not a.no_channels_last, device=a.device,
        limit_train=a.limit_train, init_from=a.init_from, stop_after=a.stop_after, progress=not a.no_progress,
        **overrides,
    )


def _run_train(a: argparse.Namespace) -> int:
    from fer_core.train import main

    try:
        model_args = json.loads(a.model_args)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"error: --model-args is not valid JSON ({exc})") from None
    cfg = _config_from_args(a, out=a.out, arch=a.arch, model_args=model_args, export=a.export, name=a.name)
    result = main(cfg, command=_command_line())
    summary = {"out": result["out"], "finished": result["finished"], "best": result["best"],
               "checkpoint": result["checkpoint"]}
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


def _run_evaluate(a: argparse.Namespace) -> int:
    import torch

    from fer_core.checkpoints import load_checkpoint
    from fer_core.data import load_dataset
    from fer_core.evaluate import evaluate_split

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    ckpt = load_checkpoint(a.checkpoint)
    ds = load_dataset(a.data)
    split = a.split
    if split not in ds.splits and ds.splits == ["All"]:
        split = "All"  # a generic .npz without a 'usage' key: evaluate every labelled row
    pre = ckpt.card.get("preprocessing", {})
    report = evaluate_split(
        ckpt.model, ds, split, class_names=ckpt.classes, mean=pre.get("mean", 0.5),
        std=pre.get("std", 0.25), flip_tta=not a.no_tta,
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


def _blur_target(out: str, src: str, n_inputs: int, suffix: str) -> Path:
    if n_inputs == 1 and Path(out).suffix:
        return Path(out)
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{Path(src).stem}_blurred{suffix}"


def _run_predict(a: argparse.Namespace) -> int:
    import numpy as np

    from fer_core.checkpoints import load_checkpoint
    from fer_core.images import ImageError, encode_png

    ckpt = load_checkpoint(a.checkpoint)
    records: list[dict] = []
    failed = 0
    if a.faces:
        from fer_core.infer import classify_faces, load_face_image

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
        from fer_core.detect import FaceDetector
        from fer_core.infer import analyze_photo
        from fer_core.video import VideoError, analyze_video

        detector = FaceDetector(a.detector)
        for path in a.inputs:
            p = Path(path)
            if not p.is_file():
                print(f"error: {path}: no such file", file=sys.stderr)
                failed += 1
                continue
            data = p.read_bytes()
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
    from fer_core.train import TrainConfig

    d = TrainConfig(epochs=6)
    p = sub.add_parser(
        "compare-archs",
        help="train cnn, resnet and fusion on the same recipe and budget; write the results CSV",
        description="Trains each architecture (its default arguments) with the same recipe and "
        "number of epochs, chooses each on PublicTest, evaluates PrivateTest, and writes "
        "checkpoints/results/architectures.csv. Resumable per architecture.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="runs/compare_archs", help="parent run folder")
    p.add_argument("--archs", nargs="+", default=["cnn", "resnet", "fusion"])
    p.add_argument("--results", default=None, help="CSV to write (default checkpoints/results/architectures.csv)")
    _add_recipe_args(p, d)


def _run_compare(a: argparse.Namespace) -> int:
    from fer_core.results import ARCH_RESULTS, compare_architectures

    base = _config_from_args(a, out=a.out)
    rows = compare_architectures(base, a.archs, a.results or ARCH_RESULTS, command=_command_line())
    print(json.dumps(rows, indent=2))
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    sub.add_parser(
        "report",
        help="regenerate README.md's results section from the model cards and result files",
        description="Rewrites the text between the README's GENERATED markers.",
    )


def _run_report(a: argparse.Namespace) -> int:
    from fer_core.results import README, update_readme

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
    _add_report(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    handlers = {"train": _run_train, "evaluate": _run_evaluate, "predict": _run_predict,
                "compare-archs": _run_compare, "report": _run_report}
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
