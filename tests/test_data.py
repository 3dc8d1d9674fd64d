import numpy as np
import pytest
from conftest import make_faces

from fer_core.data.datasets import DatasetError, default_data_path, load_dataset


def test_npz_with_splits(synthetic_npz):
    ds = load_dataset(synthetic_npz)
    assert ds.images.shape == (384, 48, 48) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int64 and set(ds.labels) <= set(range(7))
    assert ds.splits == ["Training", "PublicTest", "PrivateTest"]
    x, y = ds.split("PublicTest")
    assert x.shape == (64, 48, 48) and y.shape == (64,)
    assert ds.format == "npz" and len(ds.sha256) == 64


def test_generic_npz_drops_minus_one_and_has_no_split(tmp_path):
    images, labels = make_faces(20)
    labels[:5] = -1
    np.savez(tmp_path / "g.npz", images=images, label=labels)
    ds = load_dataset(tmp_path / "g.npz")
    assert len(ds) == 15
    assert ds.splits == ["All"]
    assert (ds.labels >= 0).all()


def test_npz_rgb_and_other_size_are_converted(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    np.savez(tmp_path / "rgb.npz", images=rgb, label=np.array([0, 1, 2, 3]))
    ds = load_dataset(tmp_path / "rgb.npz")
    assert ds.images.shape == (4, 48, 48) and ds.images.dtype == np.uint8


def test_csv(tmp_path):
    images, labels = make_faces(10)
    usage = ["Training"] * 6 + ["PublicTest"] * 2 + ["PrivateTest"] * 2
    lines = ["emotion,pixels,Usage"] + [
        f"{lab},{' '.join(map(str, img.ravel()))},{u}" for img, lab, u in zip(images, labels, usage, strict=True)
    ]
    (tmp_path / "fer2013.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(tmp_path / "fer2013.csv")
    assert ds.format == "csv"
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.splits == ["Training", "PublicTest", "PrivateTest"]


def test_csv_with_wrong_pixel_count(tmp_path):
    (tmp_path / "bad.csv").write_text("emotion,pixels,Usage\n0,1 2 3,Training\n")
    with pytest.raises(DatasetError, match="2304"):
        load_dataset(tmp_path / "bad.csv")


def test_csv_with_wrong_columns(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="emotion"):
        load_dataset(tmp_path / "bad.csv")


def test_image_folder(tmp_path):
    import cv2

    images, labels = make_faces(14)
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        split = "train" if i < 10 else "test"
        d = tmp_path / "faces" / split / names[lab]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{i}.png"), img)
    ds = load_dataset(tmp_path / "faces")
    assert ds.format == "folder" and len(ds) == 14
    assert set(ds.splits) == {"Training", "Test"}
    # PNG is lossless: every image comes back with its label
    got = {ds.images[i].tobytes(): int(ds.labels[i]) for i in range(len(ds))}
    assert got == {img.tobytes(): int(lab) for img, lab in zip(images, labels, strict=True)}


def test_image_folder_unknown_emotion(tmp_path):
    (tmp_path / "f" / "train" / "bored").mkdir(parents=True)
    with pytest.raises(DatasetError, match="bored"):
        load_dataset(tmp_path / "f")


def test_missing_dataset_names_path_and_formats(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset(tmp_path / "nope.npz")
    msg = str(e.value)
    assert "nope.npz" in msg and "--data" in msg and "FER_DATA" in msg


def test_malformed_npz(tmp_path):
    np.savez(tmp_path / "m.npz", pictures=np.zeros((2, 48, 48), np.uint8))
    with pytest.raises(DatasetError, match="'images'"):
        load_dataset(tmp_path / "m.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip file")
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset(tmp_path / "corrupt.npz")
    np.savez(tmp_path / "lab.npz", images=np.zeros((2, 48, 48), np.uint8), label=np.array([0, 9]))
    with pytest.raises(DatasetError, match="outside -1..6"):
        load_dataset(tmp_path / "lab.npz")


def test_unsupported_suffix(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match="unsupported"):
        load_dataset(tmp_path / "x.txt")


def test_env_variable_sets_default(tmp_path, monkeypatch, synthetic_npz):
    monkeypatch.setenv("FER_DATA", str(synthetic_npz))
    assert default_data_path() == synthetic_npz
    assert len(load_dataset()) == 384


def test_dedup_mask_and_validation_carve(tmp_path):
    images, labels = make_faces(12)
    images[10] = images[0]  # a test row duplicating a training row
    usage = np.array(["Training"] * 8 + ["PrivateTest"] * 4)
    np.savez(tmp_path / "d.npz", images=images, label=labels, usage=usage)
    ds = load_dataset(tmp_path / "d.npz")
    np.testing.assert_array_equal(ds.dedup_mask("PrivateTest"), [True, True, False, True])
    v = ds.with_validation(0.25, seed=1)
    assert (v.usage == "PublicTest").sum() == 2 and (v.usage == "Training").sum() == 6
    assert (ds.usage == "Training").sum() == 8  # original untouched


@pytest.mark.realdata
def test_real_fer2013(real_data):
    ds = load_dataset(real_data)
    counts = {s: int((ds.usage == s).sum()) for s in ds.splits}
    assert counts == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    assert ds.sha256 == "8584b30ce3aebc7907412e81d55c3c37e37a1bcadbe1072303804d244ede1aac"
    # The data README: 530 groups put the same image in Training and a test split.
    leaked = (~ds.dedup_mask("PublicTest")).sum() + (~ds.dedup_mask("PrivateTest")).sum()
    assert 530 <= leaked < 1500


@pytest.mark.parametrize("name", ["empty.npz", "empty.csv"])
def test_empty_dataset_file_says_so(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(DatasetError, match="the file is empty"):
        load_dataset(tmp_path / name)
