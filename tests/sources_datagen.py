"""Small synthetic data sets in the layouts the data loaders read (for tests only)."""

from __future__ import annotations

import csv
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np


def stroke_png(rng: np.random.Generator, size: int = 20, mode: str = "1") -> bytes:
    """An Omniglot-like drawing: black strokes on white, encoded as PNG."""
    from PIL import Image, ImageDraw
    im = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(im)
    pts = [tuple(int(v) for v in rng.integers(2, size - 2, 2)) for _ in range(3)]
    d.line(pts, fill=0, width=2)
    buf = io.BytesIO()
    im.convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def omniglot_entries(alphabets=("Alpha", "Beta", "Gamma"), chars: int = 4, drawings: int = 5, seed: int = 0):
    """(relative path, png bytes) in the authors' layout below the top folder."""
    rng = np.random.default_rng(seed)
    for a in alphabets:
        for c in range(1, chars + 1):
            for k in range(1, drawings + 1):
                yield f"{a}/character{c:02d}/{c:04d}_{k:02d}.png", stroke_png(rng)


def make_omniglot_zip(path: Path, top: str = "images_background", **kw) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{top}/", b"")
        for rel, data in omniglot_entries(**kw):
            zf.writestr(f"{top}/{rel}", data)
    return path


def make_omniglot_folder(root: Path, **kw) -> Path:
    for rel, data in omniglot_entries(**kw):
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
    return root


def make_mini_pickles(root: Path, classes_per_split: int = 3, per_class: int = 4, size: int = 12,
                      splits=("train", "val", "test"), protocol: int = 4) -> Path:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    for s_i, split in enumerate(splits):
        n = classes_per_split * per_class
        data = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        class_dict = {f"n0{s_i}{c:05d}": list(range(c * per_class, (c + 1) * per_class))
                      for c in range(classes_per_split)}
        with open(root / f"mini-imagenet-cache-{split}.pkl", "wb") as fh:
            pickle.dump({"image_data": data, "class_dict": class_dict}, fh, protocol=protocol)
    return root


def make_mini_csv(root: Path, classes_per_split: int = 2, per_class: int = 3, size: int = 10) -> Path:
    from PIL import Image
    rng = np.random.default_rng(2)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for s_i, split in enumerate(("train", "val", "test")):
        with open(root / f"{split}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["filename", "label"])
            for c in range(classes_per_split):
                wnid = f"n1{s_i}{c:05d}"
                for k in range(per_class):
                    name = f"{wnid}{k:08d}.jpg"
                    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / "images" / name)
                    w.writerow([name, wnid])
    return root


def make_image_folder(root: Path, grouped: bool = False, classes: int = 3, per_class: int = 4,
                      color: bool = True) -> Path:
    from PIL import Image
    rng = np.random.default_rng(3)
    groups = ["g1", "g2"] if grouped else [None]
    for g in groups:
        for c in range(classes):
            d = root / g / f"class{c}" if g else root / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                arr = rng.integers(0, 256, (9, 9, 3) if color and k % 2 == 0 else (9, 9), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"img{k}.png")
            (d / "README.txt").write_text("not an image")
    return root


def make_feature_csv(path: Path, classes: int = 6, per_class: int = 5, dim: int = 4, groups: int = 2) -> Path:
    rng = np.random.default_rng(4)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"f{i}" for i in range(dim)] + ["label", "group"])
        for c in range(classes):
            centre = rng.normal(0, 3, dim)
            for _ in range(per_class):
                w.writerow([f"{v:.4f}" for v in centre + rng.normal(0, 0.3, dim)] + [f"c{c}", f"t{c % groups}"])
    return path
