"""mini-ImageNet (Vinyals et al. 2016; the split of Ravi and Larochelle 2017), in its two common layouts.

``data.path`` is the folder holding either

- the pickle caches ``mini-imagenet-cache-{train,val,test}.pkl``: each a dict with
  ``image_data`` (uint8, N x 84 x 84 x 3) and ``class_dict`` ({wnid: [row indices]});
  or a path to one such ``.pkl`` file;
- the csv layout: ``train.csv``, ``val.csv``, ``test.csv`` with ``filename,label``
  rows and an ``images/`` folder holding the files they name.

When both are there the pickles are read (faster). Any subset of the three split
files may be present; at least one is needed.

The group of each class is the split file it came from (``"train"``, ``"val"``
or ``"test"``), so the standard split is reproduced by::

    [split]
    method = "lists"
    train = ["train"]
    val = ["val"]
    test = ["test"]

Images are resized to ``data.image_size`` (Lanczos; 84 keeps them as they are)
and scaled to [0, 1], three channels.

The pickles are read with a restricted unpickler that rebuilds numpy arrays and
plain containers only; a pickle asking for anything else (a function to call,
a class to build) is refused with a DataError, so a crafted file cannot run code.
"""

from __future__ import annotations

import csv
import io
import pickle
from pathlib import Path

import numpy as np

from workbench.data.base import ClassDataset, DataError
from workbench.data.images import cached_class_dataset, decode_image, require_path

SPLITS = ("train", "val", "test")
PICKLE_NAME = "mini-imagenet-cache-{}.pkl"
EXPECTED = ("a folder with mini-imagenet-cache-{train,val,test}.pkl (dicts of image_data and class_dict), "
            "or with train.csv/val.csv/test.csv (filename,label rows) and an images/ folder")

# (module, name) pairs a mini-ImageNet pickle may refer to: numpy array/dtype reconstruction,
# plain containers, and the latin-1 bytes codec Python 2-era pickles use. Nothing that runs code.
_SAFE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("_codecs", "encode"), ("collections", "OrderedDict"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "bytes"), ("builtins", "bytearray"), ("builtins", "str"),
    ("builtins", "int"), ("builtins", "float"), ("builtins", "bool"), ("builtins", "complex"),
    ("__builtin__", "set"), ("__builtin__", "frozenset"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Allows only the globals in ``_SAFE_GLOBALS``; everything else is refused."""

    def find_class(self, module, name):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays and plain "
                                         f"containers are allowed in a mini-ImageNet pickle")
        if module.startswith("numpy.core."):          # numpy >= 2 keeps these under numpy._core
            module = "numpy._core." + module[len("numpy.core."):]
        if module == "__builtin__":
            module = "builtins"
        return super().find_class(module, name)


def safe_load_pickle(path: Path):
    """Unpickle ``path`` allowing numpy arrays and plain containers only."""
    try:
        with open(path, "rb") as fh:
            return _SafeUnpickler(io.BufferedReader(fh), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, OSError) as e:
        raise DataError(f"{str(path)!r} is not a readable mini-ImageNet pickle ({e}); expected {EXPECTED}") \
            from None


def _resize_array(img: np.ndarray, image_size: int) -> np.ndarray:
    if img.shape[0] == image_size and img.shape[1] == image_size:
        return img
    from PIL import Image
    return np.asarray(Image.fromarray(img).resize((image_size, image_size), Image.LANCZOS), dtype=np.uint8)


def _read_pickle_split(path: Path, image_size: int):
    d = safe_load_pickle(path)
    if not isinstance(d, dict) or "image_data" not in d or "class_dict" not in d:
        keys = sorted(map(str, d)) if isinstance(d, dict) else type(d).__name__
        raise DataError(f"{str(path)!r} holds {keys}, not a dict with image_data and class_dict; "
                        f"expected {EXPECTED}")
    data, classes = d["image_data"], d["class_dict"]
    if not isinstance(data, np.ndarray) or data.ndim != 4 or data.shape[-1] != 3 or data.dtype != np.uint8:
        shape = getattr(data, "shape", type(data).__name__)
        raise DataError(f"{str(path)!r}: image_data is {shape} {getattr(data, 'dtype', '')}, expected uint8 "
                        f"N x H x W x 3 images")
    if not isinstance(classes, dict) or not classes:
        raise DataError(f"{str(path)!r}: class_dict is empty or not a dict of {{wnid: [indices]}}")
    out = []
    for wnid in sorted(classes, key=str):
        idx = np.asarray(classes[wnid], dtype=np.int64).ravel()
        if len(idx) == 0:
            raise DataError(f"{str(path)!r}: class {wnid!r} has no images")
        if idx.min() < 0 or idx.max() >= len(data):
            raise DataError(f"{str(path)!r}: class {wnid!r} names image {int(idx.max())} but image_data has "
                            f"{len(data)} images")
        out.append((str(wnid), [_resize_array(data[i], image_size) for i in idx]))
    return out


def _read_csv_split(csv_path: Path, images: Path, image_size: int):
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{str(csv_path)!r} cannot be read ({e}); expected {EXPECTED}") from None
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["filename", "label"]:
        head = rows[0] if rows else "nothing"
        raise DataError(f"{str(csv_path)!r} starts with {head}, expected a 'filename,label' header")
    by_class: dict[str, list] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < 2:
            raise DataError(f"{str(csv_path)!r} line {n} is {row}, expected filename,label")
        by_class.setdefault(row[1].strip(), []).append(row[0].strip())
    if not by_class:
        raise DataError(f"{str(csv_path)!r} has a header but no filename,label rows")
    out = []
    for wnid in sorted(by_class):
        imgs = []
        for fname in by_class[wnid]:
            f = images / fname
            if not f.is_file():
                raise DataError(f"{str(csv_path)!r} names {fname!r} but {str(f)!r} does not exist; the csv "
                                f"layout keeps every image in the images/ folder beside the csv files")
            imgs.append(decode_image(f, image_size, color=True))
        out.append((wnid, imgs))
    return out


def find_layout(root: Path) -> tuple[str, list[tuple[str, Path]]]:
    """("pickle" | "csv", [(split name, file), ...]) for ``data.path``."""
    if root.is_file():
        if root.suffix.lower() != ".pkl":
            raise DataError(f"data.path {str(root)!r} is a file but not a .pkl cache; expected {EXPECTED}")
        split = next((s for s in SPLITS if root.stem.endswith(s)), root.stem)
        return "pickle", [(split, root)]
    pkls = [(s, root / PICKLE_NAME.format(s)) for s in SPLITS if (root / PICKLE_NAME.format(s)).is_file()]
    if pkls:
        return "pickle", pkls
    csvs = [(s, root / f"{s}.csv") for s in SPLITS if (root / f"{s}.csv").is_file()]
    if csvs:
        if not (root / "images").is_dir():
            raise DataError(f"data.path {str(root)!r} has {', '.join(p.name for _, p in csvs)} but no images/ "
                            f"folder; expected {EXPECTED}")
        return "csv", csvs
    raise DataError(f"data.path {str(root)!r} holds neither mini-ImageNet pickles nor split csv files; "
                    f"expected {EXPECTED}")


def _decode(layout: str, files: list[tuple[str, Path]], root: Path, image_size: int):
    images, labels, names, groups, seen = [], [], [], [], {}
    for split, f in files:
        classes = _read_pickle_split(f, image_size) if layout == "pickle" else \
            _read_csv_split(f, root / "images", image_size)
        for wnid, imgs in classes:
            if wnid in seen:
                raise DataError(f"class {wnid!r} is in both {seen[wnid]!r} and {f.name!r}; a class belongs to "
                                f"one split file")
            seen[wnid] = f.name
            labels += [len(names)] * len(imgs)
            images += imgs
            names.append(wnid)
            groups.append(split)
    x = np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))
    return x, np.asarray(labels, np.int64), names, groups


def load_miniimagenet(path: str | Path, image_size: int = 84) -> ClassDataset:
    """mini-ImageNet from its pickle caches or csv layout; each class's group is its split file."""
    root = require_path(str(path), "mini-ImageNet", EXPECTED)
    layout, files = find_layout(root)
    sources = [f for _, f in files] + ([root / "images"] if layout == "csv" else [])
    label = f"mini-ImageNet ({layout}: {', '.join(s for s, _ in files)})"
    return cached_class_dataset("miniimagenet", sources, {"image_size": int(image_size), "layout": layout},
                                label, lambda: _decode(layout, files, root, int(image_size)))


def load_from_config(data_cfg) -> ClassDataset:
    return load_miniimagenet(data_cfg.path, data_cfg.image_size)
