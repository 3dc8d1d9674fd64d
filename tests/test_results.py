"""Result files and the README tables generated from them."""

import csv

from conftest import TINY_RESNET

from fer_core.results.architectures import compare_architectures
from fer_core.results.files import ARCH_RESULTS
from fer_core.results.report import README, readme_section, render_results
from fer_core.training.config import TrainConfig


def test_readme_results_are_generated_from_the_files():
    # Fails if a figure in the README was typed by hand or the files changed without `report`.
    assert readme_section(README) == render_results(), "run `python -m fer_core report`"


def test_shipped_architecture_comparison_covers_three_archs():
    with open(ARCH_RESULTS, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["arch"] for r in rows) == ["cnn", "fusion", "resnet"]
    assert len({r["epochs"] for r in rows}) == 1  # same budget
    for r in rows:
        assert 1 / 7 < float(r["privatetest_accuracy"]) < 1 and int(r["parameters"]) > 0 and int(r["macs"]) > 0


def test_compare_architectures_writes_one_row_per_arch(tmp_path, synthetic_npz):
    small = {"resnet": TINY_RESNET, "cnn": {"widths": [8, 16], "hidden": 16},
             "fusion": {"cnn_widths": [8], "resnet_widths": [8], "resnet_blocks": [1], "stem": 8}}
    base = TrainConfig(out=str(tmp_path / "runs"), data=str(synthetic_npz), epochs=1, batch_size=32,
                       channels_last=False, progress=False)
    out = tmp_path / "arch.csv"
    rows = compare_architectures(base, results_path=out, command="pytest", arch_args=small)
    assert [r["arch"] for r in rows] == ["cnn", "resnet", "fusion"]
    with open(out, newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [r["arch"] for r in written] == ["cnn", "resnet", "fusion"]
    assert all(r["epochs"] == "1" and r["command"] == "pytest" for r in written)
    assert len({r["parameters"] for r in written}) == 3
