"""Photo pipeline: decoding, detection, alignment, classification, overlays; bad inputs never crash."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fer_core import EMOTIONS
from fer_core.data.images import ImageError, load_image
from fer_core.inference.align import align_face
from fer_core.inference.detect import FaceDetector
from fer_core.inference.overlay import annotate, blur_faces
from fer_core.inference.pipeline import SAMPLE_PHOTO, analyze_image, analyze_photo, records_to_csv, records_to_json


@pytest.fixture(scope="module")
def yunet():
    return FaceDetector("yunet")


@pytest.fixture(scope="module")
def astronaut():
    return load_image(SAMPLE_PHOTO)


def png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def test_astronaut_one_face_both_detectors(astronaut):
    for kind in ("yunet", "haar"):
        faces = FaceDetector(kind).detect(astronaut)
        assert len(faces) == 1, kind
        x, y, w, h = faces[0].box
        assert 150 < x < 210 and 40 < y < 100 and 70 < w < 130, (kind, faces[0].box)
    assert FaceDetector("yunet").detect(astronaut)[0].landmarks.shape == (5, 2)


def test_detection_on_a_downscaled_copy_maps_boxes_back(astronaut):
    big = np.asarray(Image.fromarray(astronaut).resize((2048, 2048)))
    face = FaceDetector("yunet", max_side=512).detect(big)[0]
    ref = FaceDetector("yunet").detect(astronaut)[0]
    np.testing.assert_allclose(np.array(face.box) / 4, ref.box, atol=6)


def test_aligned_crop_puts_eyes_where_fer2013_has_them(astronaut, yunet):
    from fer_core.data.images import rgb_to_gray

    face = yunet.detect(astronaut)[0]
    crop = align_face(rgb_to_gray(astronaut), face)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    # Detecting again on the (upscaled) crop finds the eyes near the FER2013 template positions.
    big = np.asarray(Image.fromarray(crop).resize((192, 192), Image.BICUBIC).convert("RGB"))
    padded = np.pad(big, ((96, 96), (96, 96), (0, 0)), mode="edge")
    again = FaceDetector("yunet", score_threshold=0.3).detect(padded)[0]
    eyes = (again.landmarks[:2] - 96) / 4
    np.testing.assert_allclose(eyes, [[15.1, 18.3], [32.2, 18.2]], atol=3)


def test_records(astronaut, random_ckpt, yunet):
    recs = analyze_image(astronaut, random_ckpt, yunet)
    assert len(recs) == 1
    r = recs[0]
    assert r["label"] in EMOTIONS and 0 < r["confidence"] <= 1
    assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert r["negative"] == (r["label"] in {"angry", "disgust", "fear", "sad"})
    assert len(r["box"]) == 4 and len(r["landmarks"]) == 5


def test_group_photo_every_face_found(astronaut, random_ckpt, yunet):
    face = Image.fromarray(astronaut).crop((130, 20, 320, 230))
    canvas = Image.new("RGB", (1200, 500), (200, 200, 200))
    for i, s in enumerate([150, 180, 200, 170, 190]):
        f = face.resize((s, int(s * 210 / 190)))
        canvas.paste(f if i % 2 else f.transpose(Image.FLIP_LEFT_RIGHT), (20 + i * 235, 60 + (i % 2) * 80))
    recs = analyze_image(np.asarray(canvas), random_ckpt, yunet)
    assert len(recs) == 5
    assert all(r["label"] in EMOTIONS for r in recs)


def test_fifty_faces(astronaut, random_ckpt, yunet):
    face = Image.fromarray(astronaut).crop((150, 40, 300, 200)).resize((100, 106))
    canvas = Image.new("RGB", (1000, 530), (255, 255, 255))
    for i in range(50):
        canvas.paste(face, ((i % 10) * 100, (i // 10) * 106))
    recs = analyze_image(np.asarray(canvas), random_ckpt, yunet)
    assert len(recs) >= 45  # a tight grid: almost every face is found, nothing crashes


def test_no_face_and_tiny_images(random_ckpt, yunet):
    assert analyze_image(np.full((300, 400, 3), 128, np.uint8), random_ckpt, yunet) == []
    assert analyze_image(png_bytes(Image.new("RGB", (1, 1))), random_ckpt, yunet) == []


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "P+transparency", "CMYK", "I;16", "I", "F", "1", "L", "RGB"])
def test_every_colour_mode_decodes(astronaut, mode):
    img = Image.fromarray(astronaut)
    if mode == "I;16":
        conv = Image.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257)
        assert conv.mode in ("I;16", "I")
    elif mode == "P+transparency":
        conv = img.convert("P")
    else:
        conv = img.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I;16", "I", "F") else "PNG"
    extra = {"transparency": 0} if mode == "P+transparency" else {}
    rgb = load_image(png_bytes(conv, format=fmt, **extra))
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8
    if mode not in ("1",):
        assert len(FaceDetector("yunet").detect(rgb)) == 1, mode


def test_exif_rotation_is_honoured(astronaut, yunet):
    upright = yunet.detect(astronaut)[0].box
    rotated = Image.fromarray(astronaut).rotate(90, expand=True)  # stored sideways...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...with "rotate 90 CW to display"
    rgb = load_image(png_bytes(rotated, format="JPEG", exif=exif.tobytes(), quality=95))
    assert rgb.shape == astronaut.shape
    np.testing.assert_allclose(yunet.detect(rgb)[0].box, upright, atol=6)


def _png_claiming(width: int, height: int) -> bytes:
    raw = png_bytes(Image.new("L", (8, 8)))
    ihdr = struct.pack(">II", width, height) + raw[24:29]
    chunk = b"IHDR" + ihdr
    return raw[:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + raw[33:]


@pytest.mark.parametrize("data, message", [
    (b"this is text, not a JPEG", "not an image"),
    (None, "corrupt or truncated"),
    (_png_claiming(40000, 40000), "decompression bomb"),
    (_png_claiming(9000, 9000), "81 MP is over the 64 MP limit"),
    (b"", "not an image"),
])
def test_bad_files_give_clear_errors(astronaut, random_ckpt, yunet, data, message):
    if data is None:  # a truncated JPEG
        data = png_bytes(Image.fromarray(astronaut), format="JPEG")[:3000]
    with pytest.raises(ImageError, match=message):
        load_image(data)
    res = analyze_photo(data, "bad.jpg", random_ckpt, yunet)
    assert res.error and not res.records and res.annotated is None


def test_pixel_limit_is_configurable():
    with pytest.raises(ImageError, match="over the"):
        load_image(png_bytes(Image.new("RGB", (100, 100))), max_pixels=5000)


def test_overlays_and_exports(astronaut, random_ckpt, yunet):
    res = analyze_photo(png_bytes(Image.fromarray(astronaut)), "a.png", random_ckpt, yunet, blur=True)
    assert res.error is None and len(res.records) == 1
    x, y, w, h = res.records[0]["box"]
    face_before = astronaut[y: y + h, x: x + w].astype(float)
    plain = annotate(astronaut, res.records)
    blurred = blur_faces(astronaut, [res.records[0]["box"]])
    # blurring removes the fine detail of the face, and only there
    assert np.abs(np.diff(blurred[y: y + h, x: x + w].astype(float), axis=1)).mean() < 0.3 * np.abs(
        np.diff(face_before, axis=1)).mean()
    np.testing.assert_array_equal(blurred[:, :100], astronaut[:, :100])
    assert not np.array_equal(plain, astronaut) and plain.shape == astronaut.shape
    csv_text = records_to_csv([res])
    assert csv_text.splitlines()[0].startswith("image,face,label,confidence,negative")
    assert len(csv_text.splitlines()) == 2
    js = records_to_json([res])
    assert '"label"' in js and "landmarks" not in js


def test_big_jpeg_is_decoded_reduced_and_boxes_map_back(astronaut, random_ckpt, yunet):
    from fer_core.data.images import decode_image

    big = Image.fromarray(astronaut).resize((4096, 4096), Image.BICUBIC)
    data = png_bytes(big, format="JPEG", quality=90)
    rgb, scale = decode_image(data, max_side=1600)
    assert scale == 0.5 and rgb.shape == (2048, 2048, 3)
    recs = analyze_image(data, random_ckpt, yunet)
    assert len(recs) == 1
    ref = yunet.detect(astronaut)[0].box
    np.testing.assert_allclose(np.array(recs[0]["box"]) / 8, ref, atol=6)  # original (4096 px) coordinates
    res = analyze_photo(data, "big.jpg", random_ckpt, yunet)
    assert res.records[0]["box"] == recs[0]["box"] and res.annotated.shape == (2048, 2048, 3)


@pytest.mark.realdata
def test_fer_landmark_template_matches_the_data(real_data):
    from fer_core.data.datasets import load_dataset
    from fer_core.inference.align import FER_LANDMARKS, measure_landmark_template

    faces, _ = load_dataset(real_data).split("Training")
    template, n = measure_landmark_template(faces[:200], FaceDetector("yunet", score_threshold=0.5, min_size=10))
    assert n > 150
    np.testing.assert_allclose(template, FER_LANDMARKS, atol=1.0)


def _real_face_grid(real_data, n: int, cols: int, cell: int, face: int, seed: int = 0):
    """A group image of ``n`` different real FER2013 PrivateTest faces (grey canvas, ``cols`` per row)."""
    from fer_core.data.datasets import load_dataset

    faces, labels = load_dataset(real_data).split("PrivateTest")
    idx = np.random.default_rng(seed).choice(len(faces), n, replace=False)
    rows = -(-n // cols)
    canvas = Image.new("RGB", (cols * cell, rows * cell), (128, 128, 128))
    for k, i in enumerate(idx):
        tile = Image.fromarray(faces[i]).resize((face, face), Image.BICUBIC).convert("RGB")
        canvas.paste(tile, ((k % cols) * cell + (cell - face) // 2, (k // cols) * cell + (cell - face) // 2))
    truth = [EMOTIONS[labels[i]] for i in idx]
    return np.asarray(canvas), truth


def _cell_of(record, cols: int, cell: int) -> int:
    x, y, w, h = record["box"]
    return int((y + h / 2) // cell) * cols + int((x + w / 2) // cell)


def test_group_of_real_faces_every_face_found_and_labelled(real_data, yunet):
    from fer_core.models.checkpoint import load_checkpoint

    image, truth = _real_face_grid(real_data, 12, cols=4, cell=220, face=160)
    recs = analyze_image(image, load_checkpoint(), yunet)
    cells = [_cell_of(r, 4, 220) for r in recs]
    # FER2013 crops are tight, without hair or shoulders, some stylised or turned away: YuNet finds
    # 11 of these 12 (it misses a half-lit profile); each face found once, none invented.
    assert len(recs) >= 11 and len(set(cells)) == len(cells) and all(0 <= c < 12 for c in cells)
    assert all(r["label"] in EMOTIONS for r in recs)
    correct = sum(r["label"] == truth[c] for r, c in zip(recs, cells, strict=True))
    # The shipped model through detection, alignment and resampling: chance would get ~1.6 of 11
    # right (P(>= 4) = 6%); the 50-face test below checks the rate on more faces.
    assert correct >= 4


def test_fifty_different_real_faces(real_data, yunet):
    from fer_core.models.checkpoint import load_checkpoint

    image, truth = _real_face_grid(real_data, 50, cols=10, cell=200, face=144)
    recs = analyze_image(image, load_checkpoint(), yunet)
    cells = [_cell_of(r, 10, 200) for r in recs]
    assert len(recs) >= 45 and len(set(cells)) == len(cells)  # almost all found, each once
    assert sum(r["label"] == truth[c] for r, c in zip(recs, cells, strict=True)) >= 0.5 * len(recs)


def test_aligning_an_rgb_image_converts_only_the_face_region_to_gray(astronaut, yunet):
    from fer_core.data.images import rgb_to_gray
    from fer_core.inference.detect import Face
    from fer_core.inference.scenes import face_clip

    frame = next(iter(face_clip(10, 1, (640, 480))))
    for rgb in (astronaut, frame):
        faces = yunet.detect(rgb)
        faces += [Face(f.box, f.score, None) for f in faces]  # the box path (no landmarks)
        faces += [Face((-30, -20, 120, 140)), Face((rgb.shape[1] - 50, rgb.shape[0] - 40, 100, 100))]  # off the edges
        gray = rgb_to_gray(rgb)
        for f in faces:  # bit for bit: the region sampled is all that is converted
            np.testing.assert_array_equal(align_face(rgb, f), align_face(gray, f))
    big = np.asarray(Image.fromarray(astronaut).resize((2048, 2048)))  # face > 2x the work size: shrunk first
    face = yunet.detect(big)[0]
    diff = np.abs(align_face(big, face).astype(int) - align_face(rgb_to_gray(big), face))
    assert diff.max() <= 12 and diff.mean() < 1.0
