"""Feature tables: rows of numeric features with a class label and a task/group column.

For tabular, text-embedding or medical feature data: every row is one example,
``x`` is its vector of features (N, D), and classes and groups come from two
named columns (``data.label_column``, default ``label``; ``data.group_column``,
default ``group``).

Accepted files (by suffix):

- CSV (``.csv``, or ``.tsv`` with tabs) with a header row. The label column may
  hold any text or numbers; the group column is optional (without it every class
  is in one group named after the file); every other column is a feature and must
  hold a finite number in every row.
- HDF5 (``.h5``, ``.hdf5``, ``.hdf``), in one of two layouts:

  * datasets: ``/features`` (N, D) numbers, ``/<label_column>`` (N,) numbers or
    strings, optionally ``/<group_column>`` (N,) strings and ``/feature_names`` (D,);
  * a table: one compound (structured) dataset, named ``table`` or the only one
    in the file, whose fields are read like the CSV columns.

A class's group is the most common group value among its rows (ties: the first
in sorted order). Features are standardised column by column to zero mean and
unit variance with the statistics of the whole table (constant columns are only
centred). That uses the unlabelled feature scale of every split, which is the
common preprocessing for such tables and reveals no labels.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from workbench.data.base import ClassDataset, DataError
from workbench.data.images import require_path

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
EXPECTED = ("a CSV file with a header (numeric feature columns, a label column and an optional group column) "
            "or an HDF5 file with /features (N, D), /label (N,) and optionally /group (N,) datasets, "
            "or one compound table")


def _read_csv(path: Path, label_col: str, group_col: str):
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delim)
            numbered = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"feature table {str(path)!r} cannot be read as CSV text ({e}); expected {EXPECTED}") \
            from None
    rows = [r for _, r in numbered]
    lines = [n for n, _ in numbered[1:]]
    if len(rows) < 2:
        raise DataError(f"feature table {str(path)!r} has {'only a header' if rows else 'no rows'}; "
                        f"expected {EXPECTED}")
    header = [h.strip() for h in rows[0]]
    for n, r in zip(lines, rows[1:]):
        if len(r) != len(header):
            raise DataError(f"feature table {str(path)!r} line {n} has {len(r)} fields but the header has "
                            f"{len(header)}")
    cols = {h: [r[i].strip() for r in rows[1:]] for i, h in enumerate(header)}
    if len(cols) != len(header):
        dup = [h for h, c in Counter(header).items() if c > 1][0]
        raise DataError(f"feature table {str(path)!r} has the column {dup!r} twice")
    return cols, header, lambda col, row: f"line {lines[row]}"


def _read_hdf5(path: Path, label_col: str, group_col: str):
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"feature table {str(path)!r} is not a readable HDF5 file ({e}); expected {EXPECTED}") \
            from None
    try:
        with f:
            return _read_hdf5_open(f, path, label_col, group_col)
    except DataError:
        raise
    except (KeyError, OSError, ValueError, TypeError, RuntimeError) as e:   # damaged or unusual HDF5 objects
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise DataError(f"feature table {str(path)!r} cannot be read ({msg}); expected {EXPECTED}") from None


def _items(f, path: Path) -> dict:
    """The file's top-level datasets by name; links that lead elsewhere (soft, external) are refused."""
    import h5py
    out = {}
    for k in f.keys():
        link = f.get(k, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise DataError(f"feature table {str(path)!r}: /{k} is a link to another place or file; a feature table "
                            f"holds its data itself")
        out[k] = f[k]
    return out


def _read_hdf5_open(f, path: Path, label_col: str, group_col: str):
    import h5py
    items = _items(f, path)
    compound = [k for k, v in items.items() if isinstance(v, h5py.Dataset) and v.dtype.names]
    if "features" in f and isinstance(f["features"], h5py.Dataset):
        feats = f["features"][()]
        if feats.ndim != 2 or feats.dtype.kind not in "iuf":
            raise DataError(f"feature table {str(path)!r}: /features is {feats.shape} {feats.dtype}, expected "
                            f"a 2-D array of numbers (N, D)")
        names = [_text(s) for s in np.asarray(f["feature_names"][()]).ravel()] if "feature_names" in f else \
            [f"f{i}" for i in range(feats.shape[1])]
        if len(names) != feats.shape[1]:
            raise DataError(f"feature table {str(path)!r}: /feature_names has {len(names)} names for the "
                            f"{feats.shape[1]} columns of /features; give one name per column")
        if len(set(names)) != len(names):
            dup = [n for n, c in Counter(names).items() if c > 1][0]
            raise DataError(f"feature table {str(path)!r}: /feature_names holds {dup!r} twice")
        cols = {n: feats[:, i] for i, n in enumerate(names)}
        header = list(names)
        for extra in (label_col, group_col):
            if extra in f:
                cols[extra] = [_text(v) for v in np.asarray(f[extra][()]).ravel()]
                header.append(extra)
        if label_col not in cols:
            have = ", ".join("/" + k for k in f.keys())
            raise DataError(f"feature table {str(path)!r} has no /{label_col} dataset (data.label_column); it "
                            f"has {have}; expected {EXPECTED}")
        where = lambda col, row: f"row {row}"  # noqa: E731
    elif "table" in compound or len(compound) == 1:
        name = "table" if "table" in compound else compound[0]
        arr = f[name][()]
        header = list(arr.dtype.names)
        cols = {h: (arr[h] if arr.dtype[h].kind in "iuf" else [_text(v) for v in arr[h]]) for h in header}
        where = lambda col, row: f"row {row} of /{name}"  # noqa: E731
    else:
        have = ", ".join("/" + k for k in f.keys()) or "nothing"
        raise DataError(f"feature table {str(path)!r} has {have}, but neither a /features dataset nor one "
                        f"compound table; expected {EXPECTED}")
    n = {len(c) for c in cols.values()}
    if n == {0}:
        raise DataError(f"feature table {str(path)!r} has no rows; expected {EXPECTED}")
    if len(n) > 1:
        raise DataError(f"feature table {str(path)!r}: its datasets have different lengths {sorted(n)}; every "
                        f"one needs one entry per row")
    return cols, header, where


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, np.bytes_)) else str(v)


def _numbers(path: Path, name: str, values, where) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        out = values.astype(np.float64)
    else:
        try:
            out = np.asarray(values, dtype=np.float64)
        except ValueError:
            for i, v in enumerate(values):
                try:
                    float(v)
                except ValueError:
                    raise DataError(f"feature table {str(path)!r}: column {name!r} has {v!r} at {where(name, i)}, "
                                    f"not a number; every column except the label and group columns must be "
                                    f"numeric") from None
            raise DataError(f"feature table {str(path)!r}: column {name!r} cannot be read as numbers") from None
    bad = np.flatnonzero(~np.isfinite(out))
    if len(bad):
        raise DataError(f"feature table {str(path)!r}: column {name!r} has {values[bad[0]]!r} at "
                        f"{where(name, int(bad[0]))}; features must be finite numbers")
    return out


def _class_order(labels: list[str]) -> list[str]:
    uniq = set(labels)
    try:
        return sorted(uniq, key=lambda s: (float(s), s))
    except ValueError:
        return sorted(uniq)


def load_feature_table(path: str | Path, label_column: str = "label", group_column: str = "group") -> ClassDataset:
    p = require_path(str(path), "a feature table", EXPECTED)
    if p.is_dir():
        raise DataError(f"data.path {str(p)!r} is a folder; expected {EXPECTED}")
    suffix = p.suffix.lower()
    if suffix in CSV_SUFFIXES:
        cols, header, where = _read_csv(p, label_column, group_column)
    elif suffix in HDF5_SUFFIXES:
        cols, header, where = _read_hdf5(p, label_column, group_column)
    else:
        raise DataError(f"data.path {str(p)!r} has the suffix {suffix or '(none)'!r}; a feature table is "
                        f"{', '.join(CSV_SUFFIXES + HDF5_SUFFIXES)}")
    if label_column not in cols:
        raise DataError(f"feature table {str(p)!r} has no column {label_column!r} (data.label_column); its columns "
                        f"are {', '.join(header[:12])}{' ...' if len(header) > 12 else ''}")
    feature_names = [h for h in header if h not in (label_column, group_column)]
    if not feature_names:
        raise DataError(f"feature table {str(p)!r} has no feature columns besides {label_column!r}"
                        f"{' and ' + repr(group_column) if group_column in cols else ''}")
    if not len(cols[label_column]):
        raise DataError(f"feature table {str(p)!r} has no rows; expected {EXPECTED}")
    x = np.stack([_numbers(p, h, cols[h], where) for h in feature_names], axis=1)
    mean, std = x.mean(axis=0), x.std(axis=0)
    x = (x - mean) / np.where(std > 0, std, 1.0)

    labels_text = [_text(v) for v in cols[label_column]]
    if any(not s.strip() for s in labels_text):
        row = next(i for i, s in enumerate(labels_text) if not s.strip())
        raise DataError(f"feature table {str(p)!r}: the label column {label_column!r} is empty at {where('', row)}")
    groups_text = [_text(v) for v in cols[group_column]] if group_column in cols else [p.stem] * len(labels_text)
    names = _class_order(labels_text)
    index = {n: i for i, n in enumerate(names)}
    labels = np.asarray([index[s] for s in labels_text], np.int64)
    per_class: list[Counter] = [Counter() for _ in names]
    for lab, g in zip(labels, groups_text):
        per_class[lab][g] += 1
    groups = [min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for c in per_class]
    return ClassDataset(torch.from_numpy(x.astype(np.float32)), labels, names, groups,
                        source=f"feature table {p.name}")


def load_from_config(data_cfg) -> ClassDataset:
    return load_feature_table(data_cfg.path, data_cfg.label_column, data_cfg.group_column)
