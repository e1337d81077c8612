"""Any folder of images organised by class, optionally grouped one level up.

Two layouts are recognised, by looking at what the class folders hold:

- flat:    ``root/<class>/*.png|jpg|...``  (class name = folder name, group = the root's name);
- grouped: ``root/<group>/<class>/*``      (class name = ``"group/class"``, group = the group folder),
  e.g. alphabets of characters or source data sets of classes; ``split.method = "group"``
  then keeps whole groups apart.

A folder of the first level that holds images is a class; one that holds only
folders is a group. Mixing the two at the first level is an error, as are an
empty class folder and a file Pillow cannot open. Hidden files and files whose
suffix is not an image suffix (README, .DS_Store, Thumbs.db) are ignored.

Images are resized to ``data.image_size`` (Lanczos) and scaled to [0, 1]. If every
image is greyscale the data set has one channel, otherwise three (grey images are
repeated). Decoded arrays are cached on disk like Omniglot's (:mod:`workbench.data.images`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.data.base import ClassDataset, DataError
from workbench.data.images import (IMAGE_SUFFIXES, cached_class_dataset, decode_image, is_image_name,
                                   require_path, stack_images)

EXPECTED = ("a folder of class folders holding images (root/<class>/*.png), optionally grouped one level up "
            "(root/<group>/<class>/*.png)")


def _subdirs(p: Path) -> list[Path]:
    return sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))


def _images(p: Path) -> list[Path]:
    return sorted(f for f in p.iterdir() if f.is_file() and is_image_name(f.name))


def scan(root: Path) -> tuple[str, list[tuple[str, str, list[Path]]]]:
    """("flat" | "grouped", [(class name, group, image files), ...]) for a folder."""
    if not root.is_dir():
        raise DataError(f"data.path {str(root)!r} is a file, not a folder; expected {EXPECTED}")
    firsts = _subdirs(root)
    if not firsts:
        loose = _images(root)
        what = f"{len(loose)} images but no class folders" if loose else "no class folders"
        raise DataError(f"data.path {str(root)!r} holds {what}; expected {EXPECTED}")
    kinds = {}
    for d in firsts:
        if _images(d):
            kinds[d] = "class"
        elif _subdirs(d):
            kinds[d] = "group"
        else:
            raise DataError(f"class folder {str(d)!r} is empty: it holds no images (suffixes "
                            f"{', '.join(IMAGE_SUFFIXES[:4])}, ...); expected {EXPECTED}")
    if len(set(kinds.values())) > 1:
        cls = next(d for d, k in kinds.items() if k == "class")
        grp = next(d for d, k in kinds.items() if k == "group")
        raise DataError(f"data.path {str(root)!r} mixes class folders holding images ({cls.name!r}) with group "
                        f"folders holding class folders ({grp.name!r}); expected {EXPECTED}")
    if next(iter(kinds.values())) == "class":
        return "flat", [(d.name, root.name or "images", _images(d)) for d in firsts]
    out = []
    for g in firsts:
        for c in _subdirs(g):
            files = _images(c)
            if not files:
                raise DataError(f"class folder {str(c)!r} is empty: it holds no images; expected {EXPECTED}")
            out.append((f"{g.name}/{c.name}", g.name, files))
    return "grouped", out


def _decode(classes, image_size: int):
    images, labels = [], []
    for k, (_, _, files) in enumerate(classes):
        for f in files:
            images.append(decode_image(f, image_size, color=None))
            labels.append(k)
    return stack_images(images), np.asarray(labels, np.int64), [c[0] for c in classes], [c[1] for c in classes]


def load_image_folder(path: str | Path, image_size: int = 28) -> ClassDataset:
    root = require_path(str(path), "an image folder", EXPECTED)
    layout, classes = scan(root)
    return cached_class_dataset("image_folder", [root], {"image_size": int(image_size)},
                                f"image folder {root.name} ({layout}, {len(classes)} classes)",
                                lambda: _decode(classes, int(image_size)))


def load_from_config(data_cfg) -> ClassDataset:
    return load_image_folder(data_cfg.path, data_cfg.image_size)
