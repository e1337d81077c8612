"""Shared helpers of the image loaders: decoding with Pillow and an on-disk cache.

Decoding thousands of small PNG/JPEG files is the slow part of loading an image
data set (seconds for Omniglot, minutes for mini-ImageNet's csv layout), so each
image loader decodes once and keeps the result as a compressed ``.npz`` in the
per-user cache folder (``platformdirs.user_cache_dir("workbench")/datasets``, or
``$WORKBENCH_CACHE_DIR`` when set). The cache key names the loader, the source's
absolute path, its size and modification time (for a folder: of every file in
it) and the image size, so an edited source is decoded again, never served stale.

Images are kept as uint8 in the cache and in memory until :func:`to_tensor`
turns them into float32 in [0, 1].
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from workbench.data.base import ClassDataset, DataError
from workbench.files import write_atomic

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
CACHE_FORMAT = 1          # bump when the cached arrays change meaning
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F", "P;gray")


def _pil():
    try:
        from PIL import Image
    except ImportError:   # pragma: no cover - Pillow is a dependency
        raise DataError("reading images needs the Pillow package (pip install pillow)") from None
    return Image


def is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_SUFFIXES)


def decode_image(data: bytes | str | Path, image_size: int, *, color: bool | None = None,
                 where: str = "") -> np.ndarray:
    """Decode one image and resize it to ``image_size`` x ``image_size`` (Lanczos).

    ``color``: True gives (H, W, 3) RGB, False gives (H, W) grey, None keeps grey
    images grey and everything else RGB. ``where`` names the file in error messages.
    """
    Image = _pil()
    where = where or str(data)
    try:
        src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        with Image.open(src) as im:
            im.load()
            gray = im.mode in GRAY_MODES or (im.mode == "P" and _palette_is_gray(im))
            want_color = (not gray) if color is None else color
            im = im.convert("RGB" if want_color else "L")
            if im.size != (image_size, image_size):
                im = im.resize((image_size, image_size), Image.LANCZOS)
            return np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except Exception as e:   # Pillow raises many kinds: UnidentifiedImageError, OSError, SyntaxError...
        raise DataError(f"{where} is not a readable image ({type(e).__name__}: {e}); "
                        f"expected a PNG, JPEG or other image Pillow can open") from None


def _palette_is_gray(im) -> bool:
    pal = im.getpalette() or []
    rgb = np.asarray(pal[:len(pal) // 3 * 3]).reshape(-1, 3)
    return bool(len(rgb)) and bool((rgb == rgb[:, :1]).all())


def stack_images(images: list[np.ndarray]) -> np.ndarray:
    """Stack decoded images into uint8 (N, C, H, W); grey ones become 3 channels if any is RGB."""
    if not images:
        return np.zeros((0, 1, 0, 0), np.uint8)
    if any(a.ndim == 3 for a in images):
        images = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a in images]
        return np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))
    return np.stack(images)[:, None]


def to_tensor(x_uint8: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 tensor in [0, 1]."""
    return torch.from_numpy(x_uint8).float().div_(255.0)


# --------------------------------------------------------------------------
# on-disk cache
# --------------------------------------------------------------------------
def cache_dir() -> Path:
    env = os.environ.get("WORKBENCH_CACHE_DIR")
    if env:
        return Path(env) / "datasets"
    from platformdirs import user_cache_dir
    return Path(user_cache_dir("workbench")) / "datasets"


def source_fingerprint(path: Path) -> list:
    """What identifies the content of ``path``: size and mtime of the file, or of every file in the folder."""
    path = Path(path)
    st = path.stat()
    if path.is_file():
        return [str(path.resolve()), st.st_size, st.st_mtime_ns]
    rows = [str(path.resolve())]
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            try:
                s = os.stat(p)
            except OSError:
                continue
            rows.append([os.path.relpath(p, path), s.st_size, s.st_mtime_ns])
    return rows


def cache_key(loader: str, paths: list[Path], **params) -> str:
    blob = json.dumps({"format": CACHE_FORMAT, "loader": loader, "params": params,
                       "sources": [source_fingerprint(p) for p in paths]}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def cached_class_dataset(loader: str, paths: list[Path], params: dict, source: str,
                         decode: Callable[[], tuple[np.ndarray, np.ndarray, list, list]]) -> ClassDataset:
    """A ClassDataset from the disk cache, or from ``decode()`` (then written to the cache).

    ``decode`` returns (x uint8 (N, C, H, W), labels int64 (N,), class_names, groups).
    A missing, unreadable or corrupt cache entry is simply decoded again; a cache
    folder that cannot be written only costs the speed-up.
    """
    key = cache_key(loader, paths, **params)
    file = cache_dir() / f"{loader}-{key}.npz"
    arrays = _read_cache(file)
    if arrays is None:
        arrays = decode()
        _write_cache(file, *arrays)
    x, labels, names, groups = arrays
    return ClassDataset(to_tensor(x), labels.astype(np.int64), list(names), list(groups), source=source)


def _read_cache(file: Path):
    if not file.exists():
        return None
    try:
        with np.load(file, allow_pickle=False) as z:
            return (z["x"], z["labels"], [str(s) for s in z["class_names"]], [str(s) for s in z["groups"]])
    except Exception:
        return None


def _write_cache(file: Path, x, labels, names, groups) -> None:
    def save(fh):
        np.savez_compressed(fh, x=x, labels=labels, class_names=np.asarray(names, dtype=str),
                            groups=np.asarray(groups, dtype=str))
    try:
        write_atomic(file, save)
    except OSError:             # a cache that cannot be written only costs the next start its time
        pass


def require_path(path_text: str, what: str, expected: str) -> Path:
    """The path of ``data.path``, or a DataError naming it and the layout expected."""
    if not path_text or not path_text.strip():
        raise DataError(f"data.path is empty: {what} is read from a path you give; expected {expected}")
    p = Path(os.path.expanduser(path_text.strip()))
    if not p.exists():
        raise DataError(f"data.path {str(p)!r} does not exist; expected {expected}")
    return p
