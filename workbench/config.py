"""The experiment config: one typed, validated source of truth.

TOML files, the command line (``--set key=value``), the GUI forms and the
session files all go through this module.  Every field carries its type, its
default, a range or a list of choices, and one line of help in its metadata;
the GUI builds its forms from :func:`schema` and never hard-codes a widget.

A bad config is reported as a :class:`ConfigError` whose ``problems`` list
holds one plain sentence per bad field (name, value, what is allowed).
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

SCHEMA_VERSION = 1


class ConfigError(ValueError):
    """A config that cannot be used; ``problems`` has one message per bad field."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def F(default: Any, help: str, *, choices: tuple | None = None, min: float | None = None,
      max: float | None = None, kind: str | None = None, advanced: bool = False):
    """A config field with its metadata (help, choices, range, widget kind)."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "kind": kind,
            "advanced": advanced}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


CLASSIFICATION_DATASETS = ("digits", "omniglot", "miniimagenet", "image_folder", "feature_table")
REGRESSION_DATASETS = ("sinusoid", "multimodal")
DATASETS = REGRESSION_DATASETS + CLASSIFICATION_DATASETS
LEARNERS = ("maml", "fomaml", "reptile", "protonet", "matching", "anil", "metasgd", "multitask")
GRADIENT_LEARNERS = ("maml", "fomaml", "reptile", "anil", "metasgd", "multitask")
METRIC_ONLY_LEARNERS = ("protonet", "matching")
DATASETS_NEEDING_PATH = ("omniglot", "miniimagenet", "image_folder", "feature_table")


@dataclass
class DataConfig:
    dataset: str = F("digits", "Where tasks come from: built-in synthetic/bundled data or a path you give",
                     choices=DATASETS)
    path: str = F("", "File or folder with the data (Omniglot zip/folder, mini-ImageNet pickles or csv, "
                      "image folder, feature table); empty for built-in data", kind="path")
    image_size: int = F(28, "Images are resized to this many pixels per side", min=8, max=224)
    rotations: bool = F(False, "Add 90/180/270-degree rotations of every class as new classes (Omniglot habit)")
    families: list[str] = F(["sine", "line", "quadratic", "l1norm", "tanh"],
                            "Multimodal regression: which function families tasks are drawn from",
                            choices=("sine", "line", "quadratic", "l1norm", "tanh"))
    label_column: str = F("label", "Feature tables: the column holding the class label", advanced=True)
    group_column: str = F("group", "Feature tables: the column holding the task/group (family) name",
                          advanced=True)
    noise: float = F(0.0, "Regression: std of Gaussian noise added to targets", min=0.0, max=10.0,
                     advanced=True)


@dataclass
class SplitConfig:
    method: str = F("fraction", "How classes are split into meta-train/val/test: random fractions of classes, "
                                "whole groups (e.g. alphabets), or explicit lists",
                    choices=("fraction", "group", "lists"))
    train_fraction: float = F(0.6, "Share of classes (or groups) used for meta-training", min=0.05, max=0.95)
    val_fraction: float = F(0.2, "Share of classes (or groups) used for meta-validation", min=0.0, max=0.9)
    seed: int = F(0, "Seed of the random class split", min=0, max=2**31 - 1)
    train: list[str] = F([], "Explicit meta-train classes or groups (method = lists)", advanced=True)
    val: list[str] = F([], "Explicit meta-validation classes or groups (method = lists)", advanced=True)
    test: list[str] = F([], "Explicit meta-test classes or groups (method = lists)", advanced=True)


@dataclass
class TaskConfig:
    ways: int = F(5, "N: classes per episode (classification)", min=2, max=100)
    shots: int = F(1, "K: labelled support examples per class (points per task for regression)",
                   min=1, max=100)
    queries: int = F(15, "Query examples per class used to score adaptation (points per task for regression)",
                     min=1, max=200)
    within_group: bool = F(False, "Draw all classes of an episode from one group (e.g. one alphabet), so each "
                                  "task has a single family", advanced=True)


@dataclass
class ModelConfig:
    backbone: str = F("auto", "Network: MLP for vectors, Conv-4 or ResNet-12 for images (auto picks by data)",
                      choices=("auto", "mlp", "conv4", "resnet12"))
    hidden: list[int] = F([40, 40], "MLP: hidden layer widths")
    filters: int = F(64, "Conv-4: filters per layer (ResNet-12 uses 64-160-320-640 scaled by filters/64)",
                     min=4, max=512)
    norm: str = F("batch", "Normalisation: batch statistics of the current batch only (as in reference MAML), "
                           "GroupNorm, or none", choices=("batch", "group", "none"))


@dataclass
class LearnerConfig:
    name: str = F("protonet", "Meta-learning algorithm", choices=LEARNERS)
    first_order: bool = F(False, "MAML/ANIL/Meta-SGD: drop second-order terms of the meta-gradient")
    inner_steps: int = F(1, "Inner-loop gradient steps on the support set during meta-training", min=0, max=100)
    inner_lr: float = F(0.4, "Inner-loop learning rate during meta-training", min=1e-6, max=100.0)
    test_inner_steps: int = F(3, "Inner-loop steps when adapting to a test task", min=0, max=1000)
    test_inner_lr: float = F(0.4, "Inner-loop learning rate when adapting to a test task", min=1e-6, max=100.0)
    meta_lr: float = F(1e-3, "Outer (meta) learning rate of Adam (Reptile steps with reptile_epsilon instead)", min=1e-7, max=10.0)
    meta_batch: int = F(4, "Tasks per meta-step", min=1, max=1024)
    reptile_epsilon: float = F(1.0, "Reptile: outer step size towards adapted weights", min=1e-4, max=1.0,
                               advanced=True)
    matching_fce: bool = F(False, "Matching Networks: full-context embeddings (bidirectional LSTM)",
                           advanced=True)
    distance: str = F("euclidean", "ProtoNet: distance between query features and prototypes",
                      choices=("euclidean", "cosine"), advanced=True)
    checkpoint_inner: bool = F(False, "MAML family, second order: recompute each inner step during the backward "
                                      "pass (gradient checkpointing) instead of keeping its activations; less "
                                      "memory for many inner steps, more time", advanced=True)


@dataclass
class EmbeddingConfig:
    method: str = F("prototype", "Task embedding recorded at each evaluation",
                    choices=("none", "prototype", "fisher", "set_encoder"))
    dim: int = F(32, "Set encoder: size of the learned task embedding", min=2, max=1024, advanced=True)
    encoder: str = F("auto", "Set encoder: deepsets (mean over points), gru (bidirectional GRU over the points "
                             "sorted by x; 1-D regression), auto (gru for regression, else deepsets)",
                     choices=("auto", "deepsets", "gru"), advanced=True)


@dataclass
class TrainConfig:
    steps: int = F(300, "Meta-training steps", min=1, max=10_000_000)
    eval_every: int = F(100, "Validate on meta-val every this many steps (0: never)", min=0, max=10_000_000)
    val_episodes: int = F(100, "Episodes per validation", min=1, max=100_000)
    log_every: int = F(10, "Report training metrics every this many steps", min=1, max=100_000)
    checkpoint_every: int = F(0, "Save a resumable checkpoint every this many steps (0: only at the end)",
                              min=0, max=10_000_000, advanced=True)
    seed: int = F(0, "Seed of the run: model initialisation and task sampling", min=0, max=2**31 - 1)
    device: str = F("auto", "Where to train: auto picks CUDA when present", choices=("auto", "cpu", "cuda"))
    strategy: str = F("auto", "How a meta-batch is computed: vmap over tasks, a Python loop, or auto",
                      choices=("auto", "vmap", "loop"), advanced=True)
    threads: int = F(0, "CPU threads for torch (0: one for MLPs, torch's default for convolutions)", min=0, max=256, advanced=True)
    precision: str = F("float32", "Arithmetic of meta-training: float32, or bfloat16 autocast (first-order "
                                  "learners and ProtoNet only; second-order MAML stays float32)",
                       choices=("float32", "bfloat16"), advanced=True)


@dataclass
class EvalConfig:
    episodes: int = F(600, "Test episodes of the final evaluation (the field uses 600)", min=1, max=100_000)
    seed: int = F(1234, "Seed of the fixed test episodes; same seed, same tasks across sessions",
                  min=0, max=2**31 - 1)


@dataclass
class ExperimentConfig:
    name: str = F("experiment", "A short name for the run")
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    # -- convenience -------------------------------------------------------
    @property
    def is_regression(self) -> bool:
        return self.data.dataset in REGRESSION_DATASETS

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return to_toml(self)

    def get(self, key: str) -> Any:
        section, _, name = key.rpartition(".")
        obj = getattr(self, section) if section else self
        return getattr(obj, name)


SECTIONS = ("data", "split", "task", "model", "learner", "embedding", "train", "eval")


# --------------------------------------------------------------------------
# schema: what the forms and the validator read
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldInfo:
    key: str            # dotted, e.g. "learner.inner_lr"
    section: str        # "" for top level
    name: str
    type: type          # int, float, bool, str, list
    item_type: type | None
    default: Any
    help: str
    choices: tuple | None
    min: float | None
    max: float | None
    kind: str | None
    advanced: bool


def _fields_of(cls, section: str) -> list[FieldInfo]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in SECTIONS and not section:
            continue
        t = hints[f.name]
        origin = typing.get_origin(t)
        item = None
        if origin is list:
            item = typing.get_args(t)[0]
            t = list
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        m = f.metadata
        out.append(FieldInfo(f"{section}.{f.name}" if section else f.name, section, f.name, t, item, default,
                             m.get("help", ""), m.get("choices"), m.get("min"), m.get("max"), m.get("kind"),
                             m.get("advanced", False)))
    return out


def schema() -> list[FieldInfo]:
    """Every field of the experiment config, in form order."""
    out = _fields_of(ExperimentConfig, "")
    for sec in SECTIONS:
        out += _fields_of(type(getattr(ExperimentConfig(), sec)), sec)
    return out


def field_info(key: str) -> FieldInfo:
    for fi in schema():
        if fi.key == key:
            return fi
    raise KeyError(key)


def check_value(fi: FieldInfo, value: Any) -> str | None:
    """Return a message if ``value`` is not allowed for field ``fi``, else None."""
    def bad(what):
        return f"{fi.key} = {value!r}: {what}"

    if fi.type is bool:
        if not isinstance(value, bool):
            return bad("must be true or false")
        return None
    if fi.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return bad("must be a whole number")
    elif fi.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return bad("must be a number")
        if value != value or value in (float("inf"), float("-inf")):
            return bad("must be a finite number")
    elif fi.type is str:
        if not isinstance(value, str):
            return bad("must be text")
    elif fi.type is list:
        if not isinstance(value, list):
            return bad(f"must be a list of {fi.item_type.__name__}")
        for v in value:
            ok = isinstance(v, fi.item_type) and not isinstance(v, bool)
            if fi.item_type is float:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not ok:
                return bad(f"every item must be {fi.item_type.__name__}")
            if fi.choices and v not in fi.choices:
                return bad(f"{v!r} is not one of {', '.join(map(str, fi.choices))}")
            if fi.item_type is int and (v < 1 or v > 100_000):
                return bad("every item must be between 1 and 100000")
        return None
    if fi.choices is not None and value not in fi.choices:
        hint = difflib.get_close_matches(str(value), [str(c) for c in fi.choices], n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        return bad(f"must be one of {', '.join(map(str, fi.choices))}{extra}")
    if fi.min is not None and value < fi.min:
        return bad(f"must be at least {fi.min}" + (f" and at most {fi.max}" if fi.max is not None else ""))
    if fi.max is not None and value > fi.max:
        return bad(f"must be at most {fi.max}" + (f" and at least {fi.min}" if fi.min is not None else ""))
    return None


def validate(cfg: ExperimentConfig) -> list[str]:
    """All problems with ``cfg``: one message per bad field, plus cross-field checks."""
    problems = []
    for fi in schema():
        msg = check_value(fi, cfg.get(fi.key))
        if msg:
            problems.append(msg)
    if problems:
        return problems
    d, lr = cfg.data, cfg.learner
    if d.dataset in DATASETS_NEEDING_PATH and not d.path.strip():
        problems.append(f"data.path is empty: the {d.dataset} data set is read from a path you give")
    if cfg.is_regression and lr.name in METRIC_ONLY_LEARNERS:
        problems.append(f"learner.name = {lr.name!r}: {lr.name} classifies by class prototypes/attention and "
                        f"cannot do regression ({d.dataset}); use maml, fomaml, reptile, anil, metasgd or multitask")
    if cfg.is_regression and cfg.model.backbone in ("conv4", "resnet12"):
        problems.append(f"model.backbone = {cfg.model.backbone!r}: regression data are vectors; use mlp or auto")
    if d.dataset in ("digits", "feature_table") and cfg.model.backbone in ("conv4", "resnet12") \
            and d.dataset == "feature_table":
        problems.append("model.backbone: feature tables are vectors; use mlp or auto")
    if d.dataset == "multimodal" and not d.families:
        problems.append("data.families = []: pick at least one function family")
    if len(set(d.families)) != len(d.families):
        problems.append(f"data.families = {d.families!r}: each family at most once")
    s = cfg.split
    if s.method != "lists" and s.train_fraction + s.val_fraction >= 1.0 and not cfg.is_regression:
        problems.append(f"split.train_fraction + split.val_fraction = {s.train_fraction + s.val_fraction:g}: "
                        "must be below 1 so that some classes are left for meta-test")
    if s.method == "lists" and not cfg.is_regression and (not s.train or not s.test):
        problems.append("split.method = 'lists' needs non-empty split.train and split.test lists")
    if s.method == "lists":
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            both = set(getattr(s, a)) & set(getattr(s, b))
            if both:
                problems.append(f"split.{a} and split.{b} share {sorted(both)[:5]}: a class belongs to one split")
    if s.method == "group" and d.dataset in ("digits", "miniimagenet"):
        problems.append(f"split.method = 'group': {d.dataset} has no class groups; use fraction or lists")
    if cfg.embedding.method == "set_encoder" and lr.name not in ("maml", "fomaml", "protonet"):
        problems.append(f"embedding.method = 'set_encoder' conditions the backbone with FiLM and works with "
                        f"maml, fomaml and protonet, not {lr.name!r}")
    if cfg.embedding.encoder == "gru" and not cfg.is_regression:
        problems.append("embedding.encoder = 'gru' reads support points sorted by x and needs regression data; "
                        "use deepsets or auto")
    if not cfg.is_regression and lr.name in GRADIENT_LEARNERS and lr.test_inner_steps == 0 \
            and lr.name != "multitask":
        pass  # allowed: evaluates the meta-initialisation without adaptation
    return problems


def check(cfg: ExperimentConfig) -> ExperimentConfig:
    problems = validate(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


# --------------------------------------------------------------------------
# dict / TOML round trip
# --------------------------------------------------------------------------
def _coerce(fi: FieldInfo, value: Any) -> Any:
    # TOML has ints where floats are wanted: accept 1 for 1.0
    if fi.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_dict(d: dict, *, strict: bool = True, validate_values: bool = True) -> ExperimentConfig:
    """Build and validate a config from a nested dict (as read from TOML).

    ``validate_values=False`` still refuses unknown fields and wrong types but skips the
    range and cross-field checks, for presets that the user completes (an empty data.path)."""
    if not isinstance(d, dict):
        raise ConfigError([f"config must be a table of sections, got {type(d).__name__}"])
    cfg = ExperimentConfig()
    problems = []
    known_top = {f.name for f in dataclasses.fields(ExperimentConfig)} | {"schema_version"}
    for key, value in d.items():
        if key not in known_top:
            hint = difflib.get_close_matches(key, known_top, n=1)
            problems.append(f"unknown section or field {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
            continue
        if key == "schema_version":
            if value != SCHEMA_VERSION and strict:
                problems.append(f"schema_version = {value!r}: this program reads config version {SCHEMA_VERSION}")
            continue
        if key in SECTIONS:
            if not isinstance(value, dict):
                problems.append(f"[{key}] must be a section (a table), got {value!r}")
                continue
            sec = getattr(cfg, key)
            names = {f.name for f in dataclasses.fields(sec)}
            for k, v in value.items():
                if k not in names:
                    hint = difflib.get_close_matches(k, names, n=1)
                    problems.append(f"unknown field {key}.{k}" + (f" (did you mean {key}.{hint[0]}?)" if hint else ""))
                    continue
                fi = field_info(f"{key}.{k}")
                setattr(sec, k, _coerce(fi, v))
        else:
            fi = field_info(key)
            setattr(cfg, key, _coerce(fi, value))
    if problems:
        raise ConfigError(problems)
    if not validate_values:
        type_problems = [m for fi in schema() if (m := check_value(fi, cfg.get(fi.key)))]
        if type_problems:
            raise ConfigError(type_problems)
        return cfg
    return check(cfg)


def to_dict(cfg: ExperimentConfig) -> dict:
    d = {"schema_version": SCHEMA_VERSION}
    d.update(dataclasses.asdict(cfg))
    return d


def to_toml(cfg: ExperimentConfig) -> str:
    return tomli_w.dumps(to_dict(cfg))


def from_toml(text: str, *, source: str = "config", complete: bool = True) -> ExperimentConfig:
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{source} is not valid TOML: {e}"]) from None
    return from_dict(d, validate_values=complete)


def load(path: str | Path, *, complete: bool = True) -> ExperimentConfig:
    """Read a TOML config. ``complete=False`` accepts a config the user still has to finish
    (e.g. a preset whose data.path is empty): types are checked, cross-field rules are not."""
    p = Path(path)
    if not p.exists():
        raise ConfigError([f"config file {str(p)!r} does not exist"])
    if p.is_dir():
        raise ConfigError([f"config file {str(p)!r} is a folder, expected a .toml file"])
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"config file {str(p)!r} cannot be read as text: {e}"]) from None
    return from_toml(text, source=f"config file {str(p)!r}", complete=complete)


def save(cfg: ExperimentConfig, path: str | Path) -> None:
    Path(path).write_text(to_toml(cfg), encoding="utf-8")


def parse_value(fi: FieldInfo, text: str) -> Any:
    """Parse a command-line/form string into a value of the field's type."""
    t = text.strip()
    if fi.type is bool:
        if t.lower() in ("1", "true", "yes", "on"):
            return True
        if t.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError([f"{fi.key} = {text!r}: must be true or false"])
    if fi.type is int:
        try:
            return int(t)
        except ValueError:
            raise ConfigError([f"{fi.key} = {text!r}: must be a whole number"]) from None
    if fi.type is float:
        try:
            return float(t)
        except ValueError:
            raise ConfigError([f"{fi.key} = {text!r}: must be a number"]) from None
    if fi.type is list:
        items = [s.strip() for s in t.strip("[]").split(",") if s.strip()]
        if fi.item_type is int:
            try:
                return [int(s) for s in items]
            except ValueError:
                raise ConfigError([f"{fi.key} = {text!r}: must be a comma-separated list of whole numbers"]) from None
        return [s.strip("'\"") for s in items]
    return t


def with_overrides(cfg: ExperimentConfig, assignments: list[str]) -> ExperimentConfig:
    """Apply ``key=value`` strings (as given to ``--set``) and validate."""
    d = dataclasses.asdict(cfg)
    problems = []
    keys = [fi.key for fi in schema()]
    for a in assignments:
        if "=" not in a:
            problems.append(f"--set {a!r}: expected key=value, e.g. learner.inner_lr=0.1")
            continue
        key, value = a.split("=", 1)
        key = key.strip()
        if key not in keys:
            hint = difflib.get_close_matches(key, keys, n=1)
            problems.append(f"--set: unknown field {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
            continue
        try:
            v = parse_value(field_info(key), value)
        except ConfigError as e:
            problems += e.problems
            continue
        sec, _, name = key.rpartition(".")
        (d[sec] if sec else d)[name] = v
    if problems:
        raise ConfigError(problems)
    return from_dict(d)


def replace(cfg: ExperimentConfig, **changes: Any) -> ExperimentConfig:
    """A copy of ``cfg`` with dotted keys changed, e.g. replace(cfg, **{"train.steps": 5})."""
    d = dataclasses.asdict(cfg)
    for key, v in changes.items():
        key = key.replace("__", ".")
        sec, _, name = key.rpartition(".")
        (d[sec] if sec else d)[name] = v
    return from_dict(d)


def diff(a: ExperimentConfig, b: ExperimentConfig) -> list[tuple[str, Any, Any]]:
    """Fields whose values differ: (key, value in a, value in b)."""
    return [(fi.key, a.get(fi.key), b.get(fi.key)) for fi in schema() if a.get(fi.key) != b.get(fi.key)]


# --------------------------------------------------------------------------
# presets
# --------------------------------------------------------------------------
def presets_dir() -> Path:
    from workbench import resources
    return resources.path("presets")


def list_presets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(presets_dir().glob("*.toml"))}


def load_preset(name: str, *, complete: bool = True) -> ExperimentConfig:
    presets = list_presets()
    if name not in presets:
        hint = difflib.get_close_matches(name, list(presets), n=1)
        raise ConfigError([f"no preset named {name!r}; presets: {', '.join(presets)}"
                           + (f" (did you mean {hint[0]!r}?)" if hint else "")])
    return load(presets[name], complete=complete)


DEFAULT_PRESET = "digits_protonet"


def default_config() -> ExperimentConfig:
    """The ready default experiment: ProtoNet on the bundled digits."""
    return load_preset(DEFAULT_PRESET)
