"""The Dataset explorer page, driven headless with streamlit.testing (AppTest), on small files the test makes."""

import numpy as np
import pytest
from conftest import REPO
from streamlit.testing.v1 import AppTest
from test_ferplus import write_votes_npz

from fer_core.data.datasets import load_dataset
from fer_core.data.explore import agreement, class_distribution, duplicates, image_statistics, montage, sample_faces

APP = str(REPO / "app.py")
PAGE = "pages/explorer.py"


def open_explorer(path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(PAGE).run()
    at.text_input[0].set_value(path).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def with_duplicates(path):
    """A votes .npz where a Training image is copied into PrivateTest with another label (leak + conflict)."""
    write_votes_npz(path)
    z = dict(np.load(path))
    first_test = int(np.flatnonzero(z["usage"] == "PrivateTest")[0])
    z["images"][first_test] = z["images"][0]
    z["label"][first_test] = (z["label"][0] + 1) % 7
    np.savez(path, **z)
    return path


def test_explorer_shows_the_datasets_figures(tmp_path):
    data = with_duplicates(tmp_path / "v.npz")
    at = open_explorer(str(data))
    metrics = {m.label: m.value for m in at.metric}
    ds = load_dataset(data)
    dup = duplicates(ds)
    assert metrics["faces"] == f"{len(ds):,}" and metrics["FER+ votes"] == "yes"
    assert metrics["duplicate groups"] == str(dup["groups"]) == "1"
    assert metrics["test rows also in Training"] == "1"
    assert metrics["groups with conflicting labels"] == "1"
    # distribution (2 label sets), agreement heat map, 2 histograms
    assert len(at.get("plotly_chart")) == 5
    ag = agreement(ds)
    assert f"{100 * ag['overall']:.1f}%" in " ".join(m.value for m in at.markdown)
    tables = [t.value for t in at.dataframe]
    counts = tables[0]  # FER2013 counts per emotion and split
    assert int(counts.loc["angry", "Training"]) == int(((ds.usage == "Training") & (ds.labels == 0)).sum())


def test_explorer_without_votes_still_works(synthetic_npz):
    at = open_explorer(str(synthetic_npz))
    assert {m.label: m.value for m in at.metric}["FER+ votes"] == "no"
    assert any("no FER+ votes" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 3


def test_explorer_without_a_dataset_says_how_to_get_one(tmp_path):
    at = open_explorer(str(tmp_path / "missing.npz"))
    assert any("No dataset" in i.value and "fer2013.csv" in i.value for i in at.info)
    assert not at.metric


def test_explorer_with_a_corrupt_file_gives_a_message(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    at = open_explorer(str(bad))
    assert any("Cannot read this dataset" in i.value for i in at.info)


def test_explore_functions_on_synthetic_data(tmp_path):
    ds = load_dataset(with_duplicates(tmp_path / "v.npz"))
    dist = class_distribution(ds)
    assert set(dist["label_set"]) == {"FER2013", "FER+"}
    for (_, _), g in dist.groupby(["label_set", "split"]):
        assert g["share"].sum() == pytest.approx(1.0)
    faces = sample_faces(ds, per_class=3, split="Training")
    assert all(f.shape[1:] == (48, 48) and len(f) <= 3 for f in faces.values())
    grid = montage(faces["angry"], columns=2, pad=2)
    assert grid.shape == (48 * 2 + 2, 48 * 2 + 2) and grid.dtype == np.uint8
    stats = image_statistics(ds)
    assert len(stats) == len(ds) and stats["brightness"].between(0, 255).all()


def test_real_data_duplicate_facts(real_data):
    dup = duplicates(load_dataset(real_data))
    # shared/data/README.md: 1,515 groups over 3,357 rows, 530 leaking, 56 conflicting; plus the 12 blank images
    assert dup["blank_rows"] == 12
    assert (dup["groups"], dup["rows"], dup["leaking_groups"], dup["conflicting_groups"]) == (1516, 3369, 531, 57)
