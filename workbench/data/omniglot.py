"""Omniglot (Lake, Salakhutdinov and Tenenbaum, Science 2015), read as the authors ship it.

``data.path`` may be

- one of the authors' zips: ``images_background.zip``, ``images_evaluation.zip``
  or a small subset such as ``images_background_small1.zip``; inside,
  ``images_background/<Alphabet>/characterNN/<id>_<drawer>.png`` (the top folder
  may be missing);
- an unpacked folder with the same layout, ``<folder>/<Alphabet>/characterNN/*.png``;
- a folder that holds several of those zips or unpacked ``images_*`` folders: all
  of them are loaded (background and evaluation together). When the full
  ``images_background`` is there, its ``_small`` subsets are skipped, since they
  are parts of it.

Every character is a class named ``"Alphabet/characterNN"`` whose group is its
alphabet, so ``split.method = "group"`` tests on alphabets never seen in
meta-training. Images are 1-bit 105x105 drawings, black strokes on white; they
are resized to ``data.image_size`` (Lanczos) and inverted, so ink is 1.0 and
paper 0.0, one channel. Rotated classes (``data.rotations``) are added later by
:func:`workbench.data.build_sources`, not here.

Decoding happens once per process (``load_class_dataset`` memoises it) and once
per machine: the decoded arrays are cached on disk (see :mod:`workbench.data.images`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from workbench.data.base import ClassDataset, DataError
from workbench.data.images import cached_class_dataset, decode_image, is_image_name, require_path

EXPECTED = ("an Omniglot zip such as images_background.zip (images_background/<Alphabet>/characterNN/*.png), "
            "a folder with that layout, or a folder holding such zips")


class _Class:
    __slots__ = ("alphabet", "character", "items", "origin", "zf")

    def __init__(self, alphabet: str, character: str, origin: str, zf: zipfile.ZipFile | None = None):
        self.alphabet, self.character, self.origin, self.zf = alphabet, character, origin, zf
        self.items: list = []        # zip entry names (zf set) or file paths


def _scan_zip(path: Path) -> tuple[list[_Class], zipfile.ZipFile]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"data.path {str(path)!r} is not a readable zip file ({e}); expected {EXPECTED}") from None
    classes: dict[tuple, _Class] = {}
    bad_depth = []
    for name in zf.namelist():
        if name.endswith("/") or name.startswith("__MACOSX/") or not is_image_name(name):
            continue
        parts = name.split("/")
        if len(parts) not in (3, 4):
            bad_depth.append(name)
            continue
        key = (parts[-3], parts[-2])
        if key not in classes:
            classes[key] = _Class(parts[-3], parts[-2], path.name, zf)
        classes[key].items.append(name)
    if not classes:
        zf.close()
        example = f" (it holds e.g. {bad_depth[0]!r})" if bad_depth else " (it holds no PNG images)"
        raise DataError(f"data.path {str(path)!r} does not have the Omniglot layout{example}; expected {EXPECTED}")
    return sorted(classes.values(), key=lambda c: (c.alphabet, c.character)), zf


MAX_MEMBER_BYTES = 32 << 20      # an Omniglot drawing is about 300 bytes; anything this large is not one


def _read_member(zf: zipfile.ZipFile, item: str, where: str) -> bytes:
    """One image's bytes from the zip, refusing members that claim to be huge (a zip bomb, or a
    damaged directory) before anything is decompressed."""
    size = zf.getinfo(item).file_size
    if size > MAX_MEMBER_BYTES:
        raise DataError(f"{where} claims {size:,} bytes uncompressed, far more than any image; the zip is "
                        f"damaged or not an image collection")
    try:
        return zf.read(item)
    except (zipfile.BadZipFile, OSError, EOFError, MemoryError, ValueError) as e:
        raise DataError(f"{where} cannot be read from the zip ({type(e).__name__}: {e})") from None


def _scan_folder(root: Path) -> list[_Class]:
    """``root/<Alphabet>/<character>/*.png``."""
    alphabets = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    stray = [f.name for f in root.iterdir() if f.is_file() and is_image_name(f.name)]
    if not alphabets or stray:
        what = f"images directly inside it ({stray[0]!r})" if stray else "no alphabet folders"
        raise DataError(f"data.path {str(root)!r} has {what}; expected {EXPECTED}")
    out = []
    for a in alphabets:
        chars = sorted(d for d in a.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not chars:
            raise DataError(f"alphabet folder {str(a)!r} has no character folders; expected {EXPECTED}")
        for ch in chars:
            c = _Class(a.name, ch.name, root.name)
            c.items = sorted(str(f) for f in ch.iterdir() if f.is_file() and is_image_name(f.name))
            if not c.items:
                raise DataError(f"character folder {str(ch)!r} is empty: it holds no PNG images; "
                                f"expected {EXPECTED}")
            out.append(c)
    return out


def find_sources(root: Path) -> list[Path]:
    """The Omniglot zips/folders that ``data.path`` stands for, in load order."""
    if root.is_file():
        if root.suffix.lower() != ".zip":
            raise DataError(f"data.path {str(root)!r} is a {root.suffix or 'plain'} file, not a zip; expected "
                            f"{EXPECTED}")
        return [root]
    if not root.is_dir():
        raise DataError(f"data.path {str(root)!r} is neither a file nor a folder; expected {EXPECTED}")
    subsets = sorted(p for p in root.iterdir() if p.name.startswith("images_")
                     and (p.is_dir() or p.suffix.lower() == ".zip"))
    if not subsets:
        return [root]
    chosen: dict[str, Path] = {}
    for p in subsets:                     # an unpacked folder wins over its zip (same content, faster)
        stem = p.stem if p.is_file() else p.name
        if stem not in chosen or p.is_dir():
            chosen[stem] = p
    if "images_background" in chosen:     # its _small subsets are parts of it
        chosen = {k: v for k, v in chosen.items() if not k.startswith("images_background_small")}
    order = sorted(chosen, key=lambda s: (0 if "background" in s else 1, s))
    return [chosen[s] for s in order]


def _decode(sources: list[Path], image_size: int):
    classes_by_name: dict[str, _Class] = {}
    zips: list[zipfile.ZipFile] = []
    ordered: list[_Class] = []
    try:
        for src in sources:
            if src.is_file():
                found, zf = _scan_zip(src)
                zips.append(zf)
            else:
                found = _scan_folder(src)
            for c in found:
                name = f"{c.alphabet}/{c.character}"
                if name in classes_by_name:
                    raise DataError(f"class {name!r} is in both {classes_by_name[name].origin!r} and "
                                    f"{c.origin!r} under data.path: these Omniglot sets overlap; point data.path "
                                    f"at one of them")
                classes_by_name[name] = c
                ordered.append(c)
        images, labels = [], []
        for k, c in enumerate(ordered):
            for item in sorted(c.items):
                if c.zf is not None:
                    where = f"{c.origin}:{item}"
                    images.append(decode_image(_read_member(c.zf, item, where), image_size, color=False, where=where))
                else:
                    images.append(decode_image(item, image_size, color=False))
                labels.append(k)
    finally:
        for zf in zips:
            zf.close()
    x = (255 - np.stack(images))[:, None]            # ink = 1.0 after /255
    names = [f"{c.alphabet}/{c.character}" for c in ordered]
    groups = [c.alphabet for c in ordered]
    return x, np.asarray(labels, np.int64), names, groups


def load_omniglot(path: str | Path, image_size: int = 28) -> ClassDataset:
    """Omniglot from a zip or folder: one class per character, grouped by alphabet."""
    root = require_path(str(path), "Omniglot", EXPECTED)
    sources = find_sources(root)
    label = " + ".join(p.name for p in sources)
    return cached_class_dataset("omniglot", sources, {"image_size": int(image_size)}, f"Omniglot ({label})",
                                lambda: _decode(sources, int(image_size)))


def load_from_config(data_cfg) -> ClassDataset:
    return load_omniglot(data_cfg.path, data_cfg.image_size)


#: The authors' ``images_background_small1.zip`` (5 alphabets, 136 characters), shipped under
#: ``resources/data/omniglot/`` with its MIT licence: the default experiment's data.
SAMPLE_ZIP = ("data", "omniglot", "images_background_small1.zip")


def sample_path():
    """Where the shipped Omniglot sample lies (a checkout, an installed package or a bundle)."""
    from workbench import resources
    p = resources.path(*SAMPLE_ZIP)
    if not p.is_file():
        raise DataError(f"the Omniglot sample that ships with the workbench is missing ({p}); reinstall the "
                        f"package, or choose the data set 'omniglot' with a path to an Omniglot zip")
    return p


def load_sample_from_config(data_cfg) -> ClassDataset:
    """The shipped Omniglot sample through :func:`load_omniglot` (``data.path`` is not read)."""
    return load_omniglot(sample_path(), data_cfg.image_size)
