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
import tomllib
from pathlib import Path

import numpy as np

from workbench.store.reader import SessionReader
from workbench.store.schema import SessionError

MODEL_FILE, CONFIG_FILE, META_FILE, TORCHSCRIPT_FILE = ("model.safetensors", "config.toml", "model.toml",
                                                         "network.torchscript.pt")
EXPORT_FORMAT = 1


def _reader(session) -> tuple[SessionReader, bool]:
    if isinstance(session, SessionReader):
        return session, False
    return SessionReader(session), True


def export_csv(session, path) -> int:
    """Every point of every metric curve, no downsampling: columns metric, step, wall_time, value.
    Returns the number of rows written."""
    r, own = _reader(session)
    rows = 0
    try:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["metric", "step", "wall_time", "value"])
            for name in r.metric_names():
                steps, wall, values = r.metric(name)
                w.writerows(zip([name] * len(steps), steps.tolist(), map(repr, wall.tolist()),
                                map(repr, values.tolist())))
                rows += len(steps)
    except OSError as e:
        raise SessionError(f"cannot write the CSV file {str(path)!r}: {e.strerror or e}") from None
    finally:
        if own:
            r.close()
    return rows


def _model_toml(meta: dict, r: SessionReader) -> str:
    import tomli_w
    try:
        shape = [int(v) for v in json.loads(meta.get("input_shape", "[]"))]
        n_train = int(meta.get("n_train_classes", 0))
    except (ValueError, TypeError):
        raise SessionError(f"session file {str(r.path)!r}: the model's metadata is damaged") from None
    s = r.summary()
    d = {"export_format": EXPORT_FORMAT, "learner": str(meta.get("learner", s.learner)),
         "kind": str(meta.get("kind", "")), "input_shape": shape, "n_train_classes": n_train,
         "source": {"session": str(r.path), "status": r.status, "steps_done": s.steps_done,
                    "created": s.created, "metric": s.metric}}
    if np.isfinite(s.mean):
        d["source"].update(test_mean=s.mean, test_ci95=s.ci95)
    return tomli_w.dumps(d)


def export_model(session, folder) -> dict:
    """Write the model folder; returns {"folder", "files", "torchscript": str (why not, or "ok")}."""
    r, own = _reader(session)
    try:
        data = r.model_bytes()
        if not data:
            raise SessionError(f"session file {str(r.path)!r} holds no final model (status {r.status}; a model "
                               f"is stored when a run finishes or is cancelled)")
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise SessionError(f"export folder {str(folder)!r} is a file, expected a folder")
        folder.mkdir(parents=True, exist_ok=True)
        config_toml = r.model_meta.get("config_toml") or r.config_toml
        (folder / MODEL_FILE).write_bytes(data)
        (folder / CONFIG_FILE).write_text(config_toml, encoding="utf-8")
        (folder / META_FILE).write_text(_model_toml(r.model_meta, r), encoding="utf-8")
        files = [MODEL_FILE, CONFIG_FILE, META_FILE]
        model = load_model(folder)
        ts = model.trace(folder / TORCHSCRIPT_FILE)
        if ts == "ok":
            files.append(TORCHSCRIPT_FILE)
        return {"folder": str(folder), "files": files, "torchscript": ts}
    except OSError as e:
        raise SessionError(f"cannot write the model folder {str(folder)!r}: {e.strerror or e}") from None
    finally:
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


def load_model(path) -> LoadedModel:
    """Rebuild a meta-trained learner from an export folder (or a session .h5 file); no code is run
    from the files: the config is TOML, the weights are safetensors."""
    from safetensors.torch import load as load_safetensors
    from workbench import config as C
    from workbench.learners import build_learner

    p = Path(path)
    if p.is_file() and p.suffix == ".h5":
        with SessionReader(p) as r:
            data = r.model_bytes()
            if not data:
                raise SessionError(f"session file {str(p)!r} holds no final model (status {r.status})")
            config_toml = r.model_meta.get("config_toml") or r.config_toml
            info = tomllib.loads(_model_toml(r.model_meta, r))
    else:
        if not p.is_dir():
            raise SessionError(f"model {str(p)!r} is neither an export folder nor a session .h5 file")
        missing = [n for n in (MODEL_FILE, CONFIG_FILE, META_FILE) if not (p / n).is_file()]
        if missing:
            raise SessionError(f"model folder {str(p)!r} lacks {', '.join(missing)}")
        data = (p / MODEL_FILE).read_bytes()
        config_toml = (p / CONFIG_FILE).read_text(encoding="utf-8")
        try:
            info = tomllib.loads((p / META_FILE).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise SessionError(f"{str(p / META_FILE)!r} is not valid TOML: {e}") from None
    try:
        cfg = C.from_toml(config_toml, source=f"the config of model {str(p)!r}")
    except C.ConfigError as e:
        raise SessionError(f"model {str(p)!r}: its config cannot be used: {e.problems[0]}") from None
    for key, typ in (("input_shape", list), ("n_train_classes", int), ("kind", str)):
        if not isinstance(info.get(key), typ):
            raise SessionError(f"model {str(p)!r}: {META_FILE} lacks a valid {key!r}")
    try:
        state = load_safetensors(data)
    except Exception as e:
        raise SessionError(f"model {str(p)!r}: the weights are not a valid safetensors file ({e})") from None
    learner = build_learner(cfg, tuple(info["input_shape"]), info["n_train_classes"])
    try:
        learner.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise SessionError(f"model {str(p)!r}: the weights do not fit the network its config describes "
                           f"({str(e).splitlines()[0]})") from None
    learner.eval()
    return LoadedModel(learner, cfg, info)
