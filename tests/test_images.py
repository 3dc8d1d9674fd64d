"""Image errors name the file (path, given name, or an upload's name) and keep the reason; bad input never crashes."""

import io
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fer_core.data.images import ImageError, decode_image, load_image
from fer_core.inference.detect import FaceDetector
from fer_core.inference.pipeline import SAMPLE_PHOTO, analyze_image, analyze_photo, load_face_image


def encoded(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """An 8x8 PNG whose header claims ``width`` x ``height`` pixels."""
    raw = encoded(Image.new("L", (8, 8)))
    chunk = b"IHDR" + struct.pack(">II", width, height) + raw[24:29]
    return raw[:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + raw[33:]


BAD_FILES = {
    "empty.jpg": (b"", "the file is empty"),
    "notes.png": (b"this is text, not a PNG", "not an image Pillow can read"),
    "truncated.jpg": (None, "corrupt or truncated"),
    "huge.png": (png_claiming(9000, 9000), "81 MP is over the 64 MP limit"),
    "bomb.png": (png_claiming(40000, 40000), "decompression bomb"),
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    jpeg = SAMPLE_PHOTO.read_bytes()
    out = {}
    for name, (content, reason) in BAD_FILES.items():
        (d / name).write_bytes(jpeg[:3000] if content is None else content)
        out[d / name] = reason
    return out


def test_path_errors_start_with_the_path_and_keep_the_reason(bad_files):
    for path, reason in bad_files.items():
        with pytest.raises(ImageError) as info:
            load_image(path)
        msg = str(info.value)
        assert msg.startswith(f"{path}: ") and reason in msg, msg
        with pytest.raises(ImageError, match=reason):
            load_face_image(str(path))


def test_bytes_errors_name_the_given_name(bad_files):
    for path, reason in bad_files.items():
        data = path.read_bytes()
        for fn, kw in ((load_image, {}), (decode_image, {"max_side": 800}), (load_face_image, {})):
            with pytest.raises(ImageError) as info:
                fn(data, name=path.name, **kw)
            assert str(info.value).startswith(f"{path.name}: ") and reason in str(info.value)


def test_file_objects_are_named_by_their_name(bad_files):
    path = next(p for p in bad_files if p.name == "notes.png")
    with open(path, "rb") as fh, pytest.raises(ImageError, match="^" + re.escape(f"{path}: not an image")):
        load_image(fh)
    upload = io.BytesIO(b"")
    upload.name = "upload.png"  # what Streamlit's UploadedFile carries
    with pytest.raises(ImageError, match="^upload.png: the file is empty"):
        load_image(upload)


def test_missing_file_and_folder_are_named(tmp_path):
    with pytest.raises(ImageError, match="^" + re.escape(f"{tmp_path / 'gone.jpg'}: no such file")):
        load_image(tmp_path / "gone.jpg")
    with pytest.raises(ImageError, match="^" + re.escape(f"{tmp_path}: is a folder")):
        load_image(tmp_path)


def test_photo_results_name_the_file_and_never_raise(bad_files, random_ckpt):
    detector = FaceDetector("haar")
    for path, reason in bad_files.items():
        res = analyze_photo(path.read_bytes(), path.name, random_ckpt, detector)
        assert res.error.startswith(f"{path.name}: ") and reason in res.error, res.error
        assert res.name == path.name and not res.records and res.annotated is None
        with pytest.raises(ImageError, match="^" + re.escape(f"{path.name}: ")):
            analyze_image(path.read_bytes(), random_ckpt, detector, name=path.name)


def test_unnamed_bytes_still_say_why():
    with pytest.raises(ImageError, match="the file is empty"):
        load_image(b"")
    with pytest.raises(ImageError, match="the file is empty"):
        decode_image(io.BytesIO())


def test_array_errors_name_the_image():
    with pytest.raises(ImageError, match="^frame 3: array images must be uint8"):
        load_image(np.zeros((4, 4), np.float32), name="frame 3")


@pytest.mark.parametrize("mode", ["P", "LA", "CMYK", "I;16", "RGBA"])
def test_odd_colour_modes_from_files_decode(tmp_path, mode):
    img = Image.open(SAMPLE_PHOTO).convert("L").resize((64, 48))
    conv = Image.fromarray(np.asarray(img).astype(np.uint16) * 257) if mode == "I;16" else img.convert(mode)
    f = tmp_path / f"odd.{'tif' if mode in ('CMYK', 'I;16') else 'png'}"
    conv.save(f)
    rgb = load_image(f)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8


def test_exif_rotation_from_a_file(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    f = tmp_path / "sideways.jpg"
    Image.new("RGB", (60, 40), (200, 10, 10)).save(f, exif=exif.tobytes())
    assert load_image(f).shape == (60, 40, 3)
