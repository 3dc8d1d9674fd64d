"""Decoding user images safely and in memory.

Accepts file paths, raw bytes, file-like objects, PIL images and numpy arrays; honours EXIF
orientation; converts every colour mode Pillow knows (RGBA, LA, P, CMYK, I;16, I, F, 1, L) to
RGB; refuses empty files, decompression bombs and files that are not images with :class:`ImageError`,
whose message starts with the file's name (its path, the ``name`` given, or a file object's ``name``).
Nothing is written to disk.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import IO

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Largest image accepted, in pixels (Pillow's own bomb check triggers at twice its limit).
MAX_PIXELS = 64_000_000

ImageSource = str | os.PathLike | bytes | bytearray | IO[bytes] | Image.Image | np.ndarray


class ImageError(ValueError):
    """An input is not a decodable image (or is too large); the message says which and why."""


def _describe(src: object, name: str | os.PathLike | None = None) -> str:
    """How messages name an image: ``name`` if given, else the path, else a file object's ``name``
    (an open file, Streamlit's ``UploadedFile``), else ``<N bytes>`` / ``<type>``."""
    if name is not None and str(name):
        return str(name)
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, (bytes, bytearray)):
        return f"<{len(src)} bytes>"
    own = getattr(src, "name", None)
    if isinstance(own, (str, os.PathLike)) and str(own):
        return str(own)
    return f"<{type(src).__name__}>"


def _is_empty(src: object) -> bool:
    """Whether ``src`` (bytes, a path or a seekable file object) holds no bytes; False when unknown."""
    try:
        if isinstance(src, (bytes, bytearray)):
            return len(src) == 0
        if isinstance(src, (str, os.PathLike)):
            return os.path.isfile(src) and os.path.getsize(src) == 0
        if hasattr(src, "seek") and hasattr(src, "tell"):
            here = src.tell()
            end = src.seek(0, io.SEEK_END)
            src.seek(here)
            return end == 0
    except (OSError, ValueError, TypeError):
        return False
    return False


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        if img.mode.startswith("I;16") and hi <= 65535 and lo >= 0:
            a = a / 257.0 if hi > 255 else a
        elif hi > lo:
            a = (a - lo) * (255.0 / (hi - lo))
        g = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def load_image(src: ImageSource, max_pixels: int = MAX_PIXELS, name: str | os.PathLike | None = None) -> np.ndarray:
    """Decode an image to ``uint8 (H, W, 3)`` RGB, upright per its EXIF orientation.

    Args:
        src: path, bytes, binary file object, PIL image, or numpy array (``(H, W)`` gray,
            ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, uint8).
        max_pixels: refuse images with more pixels than this.
        name: how error messages name the image (e.g. an uploaded file's name); default: the path, the
            file object's ``name``, or ``<N bytes>``.

    Returns:
        ``uint8 (H, W, 3)`` RGB array at full resolution.

    Raises:
        ImageError: not an image, truncated/corrupt, an empty file ("the file is empty"), or larger than
            ``max_pixels``; the message starts with the image's name (see ``name``).
    """
    return decode_image(src, max_pixels, name=name)[0]


def decode_image(
    src: ImageSource, max_pixels: int = MAX_PIXELS, max_side: int | None = None, name: str | os.PathLike | None = None
) -> tuple[np.ndarray, float]:
    """Like :func:`load_image`, but a JPEG whose longer side exceeds ``max_side`` is decoded at a reduced
    scale (libjpeg's DCT scaling, ``Image.draft``: 1/2, 1/4 or 1/8), which is several times faster.

    Returns:
        ``(rgb uint8 (h, w, 3), scale)``: ``scale`` = decoded size / original size (1.0 when not
        reduced); multiply original pixel coordinates by it to get decoded ones.

    Raises:
        ImageError: as :func:`load_image` (the message names the image; see its ``name``).
    """
    if isinstance(src, np.ndarray):
        a = src
        named = f"{name}: " if name is not None and str(name) else ""
        if a.dtype != np.uint8:
            raise ImageError(f"{named}array images must be uint8, got {a.dtype}")
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
            raise ImageError(f"{named}array image has shape {a.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")
        return np.ascontiguousarray(a[:, :, :3]), 1.0
    where = _describe(src, name)
    if not isinstance(src, Image.Image) and _is_empty(src):
        raise ImageError(f"{where}: the file is empty (not an image)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if isinstance(src, Image.Image):
                img = src
            elif isinstance(src, (bytes, bytearray)):
                img = Image.open(io.BytesIO(bytes(src)))
            else:
                img = Image.open(src)
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(
                    f"{where}: {w}x{h} = {w * h / 1e6:.0f} MP is over the {max_pixels / 1e6:.0f} MP limit"
                )
            if w == 0 or h == 0:
                raise ImageError(f"{where}: empty image ({w}x{h})")
            if max_side and max(w, h) > max_side and img.format == "JPEG":
                f = max_side / max(w, h)
                img.draft("RGB", (max(1, int(w * f)), max(1, int(h * f))))
            img.load()
            scale = img.size[0] / w
            return _pil_to_rgb(img), scale
    except ImageError:
        raise
    except FileNotFoundError as exc:
        raise ImageError(f"{where}: no such file") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{where}: is a folder, not an image") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{where}: not an image Pillow can read") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{where}: refused as a possible decompression bomb ({exc})") from exc
    except (OSError, ValueError, SyntaxError, MemoryError) as exc:
        raise ImageError(f"{where}: corrupt or truncated image ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # a malformed file can trip any of Pillow's plugins; bad input must never crash
        raise ImageError(f"{where}: cannot be decoded ({type(exc).__name__}: {exc})") from exc


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of ``uint8 (H, W, 3)`` RGB, as ``uint8 (H, W)`` (what FER2013 faces are)."""
    g = rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(g), 0, 255).astype(np.uint8)


def face_to_48(gray: np.ndarray) -> np.ndarray:
    """Resize a grayscale face crop ``uint8 (H, W)`` to ``uint8 (48, 48)`` (area interpolation)."""

    if gray.shape == (48, 48):
        return gray
    interp = cv2.INTER_AREA if min(gray.shape) >= 48 else cv2.INTER_LINEAR
    return cv2.resize(gray, (48, 48), interpolation=interp)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of a ``uint8 (H, W, 3)`` RGB image, encoded in memory (for downloads)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()
