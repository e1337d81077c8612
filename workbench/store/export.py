"""Exporting a session: the meta-trained model for other programs, and the metrics as CSV.

``export_model(session, folder)`` writes

- ``model.safetensors``: every tensor of the learner's ``state_dict`` (no pickle);
- ``config.toml``: the experiment config, exactly as the run used it;
- ``model.toml``: what is needed to rebuild the network (learner, task kind,
  input shape, number of meta-train classes) and where it came from;
- ``network.torchscript.pt`` where tracing works: the learner's network
  (trunk + head for MAML, FOMAML, ANIL, Meta-SGD, Reptile and the multi-task
  baseline, i.e. the meta-initialisation; the feature extractor for ProtoNet
  and Matching Networks), traced with ``torch.jit.trace`` for programs without
  this package. Test-time adaptation needs the Python learner (below).

``load_model(path)`` rebuilds the learner from ``config.toml`` + ``model.toml``
with :func:`workbench.learners.build_learner` and loads the safetensors state:
no code from the folder is executed (TOML is data; safetensors holds only
tensors). It also accepts a session ``.h5`` file directly.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
import tomllib
from pathlib import Path

import numpy as np

from workbench.files import write_atomic
from workbench.store.reader import HDF5_SIGNATURE, SessionReader
from workbench.store.schema import SessionError

MODEL_FILE, CONFIG_FILE, META_FILE, TORCHSCRIPT_FILE = ("model.safetensors", "config.toml", "model.toml",
                                                         "network.torchscript.pt")
EXPORT_FORMAT = 1
KINDS = ("classification", "regression")
MAX_INPUT_DIMS, MAX_INPUT_SIDE, MAX_INPUT_SIZE = 4, 100_000, 10**8
MAX_TRAIN_CLASSES = 10**7
MAX_TOML_BYTES = 1 << 20


def _reader(session) -> tuple[SessionReader, bool]:
    if isinstance(session, SessionReader):
        return session, False
    return SessionReader(session), True


def _is_session_file(p: Path) -> bool:
    """Whether ``p`` is an HDF5 file (any session, or anything that could be one): never written over."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return head == HDF5_SIGNATURE


def _check_target(target: Path, source: Path, force: bool, what: str) -> None:
    """Refuse to write ``target`` over the session being exported, over any HDF5/session file, or
    (without ``force``) over any existing file."""
    try:
        if target.exists() and source.exists() and os.path.samefile(target, source):
            raise SessionError(f"{what} {str(target)!r} is the session file being exported; choose another name")
    except OSError:
        pass
    if target.is_dir():
        raise SessionError(f"{what} {str(target)!r} is a folder, expected a file name")
    if os.path.lexists(target):
        if _is_session_file(target):
            raise SessionError(f"{what} {str(target)!r} is an HDF5 (session) file; exports never write over one")
        if not force:
            raise SessionError(f"{what} {str(target)!r} already exists; choose another name, or replace it "
                               f"(workbench export --force)")


def export_csv(session, path, *, force: bool = False) -> int:
    """Every point of every metric curve, no downsampling: columns metric, step, wall_time, value.
    Returns the number of rows written. Never writes over the session itself or any session file;
    an existing file is replaced only with ``force``; written to a temporary name and renamed."""
    r, own = _reader(session)
    out = Path(path)
    try:
        _check_target(out, Path(r.path), force, "CSV file")
        curves = [(name, *r.metric(name)) for name in r.metric_names()]     # read before writing anything
        rows = sum(len(c[1]) for c in curves)

        def write(fh):
            import io
            text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
            w = csv.writer(text)
            w.writerow(["metric", "step", "wall_time", "value"])
            for name, steps, wall, values in curves:
                w.writerows(zip([name] * len(steps), steps.tolist(), map(repr, wall.tolist()),
                                map(repr, values.tolist())))
            text.flush()
            text.detach()

        write_atomic(out, write)
    except OSError as e:
        raise SessionError(f"cannot write the CSV file {str(path)!r}: {e.strerror or e}") from None
    finally:
        if own:
            r.close()
    return rows


def _model_toml(meta: dict, r: SessionReader) -> str:
    import tomli_w
    try:
        raw = meta.get("input_shape", "[]")
        shape = json.loads(raw) if isinstance(raw, str) else raw
        shape = [int(v) for v in shape] if isinstance(shape, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in shape) else None
        n_train = int(meta.get("n_train_classes", 0))
    except (ValueError, TypeError, OverflowError, RecursionError):
        shape, n_train = None, -1
    if shape is None or n_train < 0:
        raise SessionError(f"session file {str(r.path)!r}: the model's metadata is damaged")
    s = r.summary()
    d = {"export_format": EXPORT_FORMAT, "learner": str(meta.get("learner", s.learner)),
         "kind": str(meta.get("kind", "")), "input_shape": shape, "n_train_classes": n_train,
         "source": {"session": str(r.path), "status": r.status, "steps_done": s.steps_done,
                    "created": s.created, "metric": s.metric}}
    if np.isfinite(s.mean):
        d["source"].update(test_mean=s.mean, test_ci95=s.ci95)
    return tomli_w.dumps(d)


def export_model(session, folder, *, force: bool = False) -> dict:
    """Write the model folder; returns {"folder", "files", "torchscript": str (why not, or "ok")}.

    Everything is written into a temporary folder beside ``folder`` and checked there (the model
    must load back), then moved into place: a failure leaves nothing partial behind. Files already
    in ``folder`` with the export's names are replaced only with ``force``; a session file is never
    written over."""
    r, own = _reader(session)
    folder = Path(folder)
    tmp = None
    try:
        data = r.model_bytes()
        if not data:
            raise SessionError(f"session file {str(r.path)!r} holds no final model (status {r.status}; a model "
                               f"is stored when a run finishes or is cancelled)")
        if folder.exists() and not folder.is_dir():
            raise SessionError(f"export folder {str(folder)!r} is a file, expected a folder")
        for name in (MODEL_FILE, CONFIG_FILE, META_FILE, TORCHSCRIPT_FILE):
            _check_target(folder / name, Path(r.path), force, "export file")
        config_toml = r.model_meta.get("config_toml") or r.config_toml
        meta_toml = _model_toml(r.model_meta, r)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
        (tmp / MODEL_FILE).write_bytes(data)
        (tmp / CONFIG_FILE).write_text(config_toml, encoding="utf-8")
        (tmp / META_FILE).write_text(meta_toml, encoding="utf-8")
        files = [MODEL_FILE, CONFIG_FILE, META_FILE]
        model = load_model(tmp)
        ts = model.trace(tmp / TORCHSCRIPT_FILE)
        if ts == "ok":
            files.append(TORCHSCRIPT_FILE)
        for name in files:
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        if not folder.exists():
            os.replace(tmp, folder)
            tmp = None
        else:
            for name in files:
                os.replace(tmp / name, folder / name)
            if ts != "ok" and (folder / TORCHSCRIPT_FILE).exists():
                (folder / TORCHSCRIPT_FILE).unlink()      # an old trace would not match the new weights
        return {"folder": str(folder), "files": files, "torchscript": ts}
    except OSError as e:
        raise SessionError(f"cannot write the model folder {str(folder)!r}: {e.strerror or e}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if own:
            r.close()


class LoadedModel:
    """A meta-trained learner ready to adapt and predict.

        m = workbench.load_model("exported/")
        m.adapt(support_x, support_y)      # a few labelled examples of a new task
        y = m.predict(query_x)             # outputs: logits (classification) or values (regression)
        labels = m.classify(query_x)       # classification: predicted class 0..ways-1

    Inputs may be numpy arrays or tensors shaped like the training data (``input_shape``
    per example); outputs are numpy arrays.
    """

    def __init__(self, learner, cfg, info: dict):
        self.learner, self.config, self.info = learner, cfg, info
        self.kind = info["kind"]
        self.input_shape = tuple(info["input_shape"])
        self._state = None

    def _x(self, x):
        import torch
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
        if tuple(t.shape[1:]) != self.input_shape:
            raise ValueError(f"inputs must be shaped (n, {', '.join(map(str, self.input_shape))}), got "
                             f"{tuple(t.shape)}")
        return t

    def _y(self, y):
        import torch
        y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
        return y.float().reshape(len(y), -1) if self.kind == "regression" else y.long().reshape(-1)

    def adapt(self, support_x, support_y, steps: int | None = None, lr: float | None = None) -> "LoadedModel":
        """Adapt to a new task from its support set (the learner's own test-time procedure)."""
        sx, sy = self._x(support_x), self._y(support_y)
        if len(sx) != len(sy):
            raise ValueError(f"support_x has {len(sx)} examples but support_y has {len(sy)}")
        kw = {k: v for k, v in (("steps", steps), ("lr", lr)) if v is not None}
        self._state = self.learner.adapt(sx, sy, **kw)
        return self

    def predict(self, x) -> np.ndarray:
        import torch
        if self._state is None:
            raise RuntimeError("call adapt(support_x, support_y) with a support set of the task first")
        with torch.no_grad():
            return self.learner.predict(self._state, self._x(x)).cpu().numpy()

    def classify(self, x) -> np.ndarray:
        if self.kind != "classification":
            raise RuntimeError("classify() is for classification models; use predict() for regression")
        return self.predict(x).argmax(-1)

    def trace(self, path) -> str:
        """Save the network traced with TorchScript; returns "ok" or why it could not."""
        import torch
        net = self.learner.backbone
        example = torch.zeros((2, *self.input_shape))
        import warnings
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)   # torch 2.13 deprecates TorchScript
                traced = torch.jit.trace(net, example, check_trace=False)
                if not torch.allclose(traced(example), net(example), atol=1e-5):
                    return "the traced network does not reproduce the network"
            traced.save(str(path))
            return "ok"
        except Exception as e:  # FiLM-modulated or dynamic networks may not trace
            Path(path).unlink(missing_ok=True)
            return f"not traceable ({type(e).__name__}: {str(e).splitlines()[0][:120]})"


def _read_text(p: Path, what: str) -> str:
    try:
        size = p.stat().st_size
        if size > MAX_TOML_BYTES:
            raise SessionError(f"{what} {str(p)!r} is {size:,} bytes, far more than a config or model description")
        return p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise SessionError(f"{what} {str(p)!r} is not UTF-8 text") from None
    except OSError as e:
        raise SessionError(f"{what} {str(p)!r} cannot be read: {e.strerror or e}") from None


def _check_info(info: dict, cfg, where: str) -> None:
    """The model description against plausible bounds and against the config it claims to come from."""
    if not isinstance(info, dict):
        raise SessionError(f"{where}: {META_FILE} is not a table")
    fmt = info.get("export_format", EXPORT_FORMAT)
    if not isinstance(fmt, int) or isinstance(fmt, bool) or not 1 <= fmt <= EXPORT_FORMAT:
        raise SessionError(f"{where}: {META_FILE} has export_format {fmt!r}; this program reads up to "
                           f"{EXPORT_FORMAT}")
    for key, typ in (("input_shape", list), ("n_train_classes", int), ("kind", str)):
        if not isinstance(info.get(key), typ) or isinstance(info.get(key), bool):
            raise SessionError(f"{where}: {META_FILE} lacks a valid {key!r}")
    shape = info["input_shape"]
    if not 1 <= len(shape) <= MAX_INPUT_DIMS or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INPUT_SIDE for v in shape) \
            or math.prod(shape) > MAX_INPUT_SIZE:
        raise SessionError(f"{where}: its input_shape {shape[:8]!r} is not a shape of 1 to {MAX_INPUT_DIMS} "
                           f"positive sizes (damaged or crafted)")
    if not 0 <= info["n_train_classes"] <= MAX_TRAIN_CLASSES:
        raise SessionError(f"{where}: its n_train_classes {info['n_train_classes']} is impossible")
    if info["kind"] not in KINDS:
        raise SessionError(f"{where}: its kind {info['kind']!r} is neither 'classification' nor 'regression'")
    want = "regression" if cfg.is_regression else "classification"
    if info["kind"] != want:
        raise SessionError(f"{where}: it says kind {info['kind']!r} but its config describes a {want} model")
    learner = info.get("learner", cfg.learner.name)
    if learner != cfg.learner.name:
        raise SessionError(f"{where}: it names the learner {learner!r} but its config names "
                           f"{cfg.learner.name!r}")


def _shape_text(shape) -> str:
    return "x".join(map(str, shape)) or "a scalar"


def load_model(path) -> LoadedModel:
    """Rebuild a meta-trained learner from an export folder (or a session .h5 file); no code is run
    from the files: the config is TOML, the weights are safetensors.

    Everything is checked before anything large is allocated: the texts are UTF-8 TOML, the model
    description is plausible and agrees with the config, and the network the config describes,
    built first without memory (torch's meta device), has exactly the tensors the weights file
    holds. Any problem is a :class:`SessionError` with one sentence."""
    from workbench import config as C

    p = Path(path)
    where = f"model {str(p)!r}"
    if p.is_file() and p.suffix == ".h5":
        with SessionReader(p) as r:
            data = r.model_bytes()
            if not data:
                raise SessionError(f"session file {str(p)!r} holds no final model (status {r.status})")
            config_toml = r.model_meta.get("config_toml") or r.config_toml
            if not isinstance(config_toml, str):
                raise SessionError(f"session file {str(p)!r}: the model's metadata is damaged")
            info = tomllib.loads(_model_toml(r.model_meta, r))
    else:
        if not p.is_dir():
            raise SessionError(f"{where} is neither an export folder nor a session .h5 file")
        missing = [n for n in (MODEL_FILE, CONFIG_FILE, META_FILE) if not (p / n).is_file()]
        if missing:
            raise SessionError(f"model folder {str(p)!r} lacks {', '.join(missing)}")
        try:
            data = (p / MODEL_FILE).read_bytes()
        except OSError as e:
            raise SessionError(f"{where}: {MODEL_FILE} cannot be read: {e.strerror or e}") from None
        config_toml = _read_text(p / CONFIG_FILE, "config file")
        try:
            info = tomllib.loads(_read_text(p / META_FILE, "model description"))
        except tomllib.TOMLDecodeError as e:
            raise SessionError(f"{str(p / META_FILE)!r} is not valid TOML: {e}") from None
    try:
        cfg = C.from_dict(tomllib.loads(config_toml), strict=False, validate_values=False)
    except tomllib.TOMLDecodeError as e:
        raise SessionError(f"{where}: its config is not valid TOML ({str(e).splitlines()[0]})") from None
    except C.ConfigError as e:
        raise SessionError(f"{where}: its config cannot be used: {e.problems[0]}") from None
    _check_info(info, cfg, where)
    return _build(cfg, info, data, where)


def _build(cfg, info: dict, data: bytes, where: str) -> LoadedModel:
    import torch
    from safetensors.torch import load as load_safetensors
    from workbench.learners import build_learner
    try:
        state = load_safetensors(data)
    except Exception as e:
        raise SessionError(f"{where}: the weights are not a valid safetensors file "
                           f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
    shape, n_train = tuple(info["input_shape"]), info["n_train_classes"]
    try:
        with torch.device("meta"):              # the network's shapes, without allocating its memory
            ghost = build_learner(cfg, shape, n_train).state_dict()
    except Exception as e:  # the config describes no buildable network for that input
        raise SessionError(f"{where}: its config does not describe a network for inputs of shape "
                           f"{_shape_text(shape)} ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
                           ) from None
    missing = [k for k in ghost if k not in state]
    extra = [k for k in state if k not in ghost]
    if missing or extra:
        what = (f"the network needs {missing[0]!r}, which the weights file lacks" if missing
                else f"the weights file holds {extra[0]!r}, which the network does not have")
        raise SessionError(f"{where}: the weights do not fit the network its config describes: {what} "
                           f"({len(missing)} missing, {len(extra)} unexpected)")
    for k, t in ghost.items():
        if tuple(t.shape) != tuple(state[k].shape):
            raise SessionError(f"{where}: the weights do not fit the network its config describes: {k!r} is "
                               f"{_shape_text(tuple(state[k].shape))} in the weights file but "
                               f"{_shape_text(tuple(t.shape))} in the network")
    try:
        learner = build_learner(cfg, shape, n_train)
        learner.load_state_dict(state, strict=True)
    except SessionError:
        raise
    except Exception as e:
        raise SessionError(f"{where}: the weights cannot be loaded into the network ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None
    learner.eval()
    return LoadedModel(learner, cfg, info)
