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
import functools
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import tomli_w

from workbench import registry
from workbench.fields import F, SECTIONS

SCHEMA_VERSION = 1


class Problem(typing.NamedTuple):
    """One thing wrong with a config: the field's dotted ``key`` ('' for the whole config), the full
    sentence (``message``, naming the key, for the command line) and the same without the
    "key = value: " prefix (``detail``, for a form that shows the field's label instead)."""

    key: str
    message: str
    detail: str = ""

    def __str__(self) -> str:
        return self.message


class ConfigError(ValueError):
    """A config that cannot be used; ``problems`` has one message per bad field, ``items`` the
    :class:`Problem` records behind them."""

    def __init__(self, problems: list):
        self.items = [p if isinstance(p, Problem) else Problem("", str(p), str(p)) for p in problems]
        self.problems = [p.message for p in self.items]
        super().__init__("\n".join(self.problems))


def _problem(key: str, detail: str, value: Any = dataclasses.MISSING, *, message: str = "") -> Problem:
    head = key if value is dataclasses.MISSING else f"{key} = {value!r}"
    return Problem(key, message or (f"{head}: {detail}" if key else detail), detail)


def _spec(reg, name):
    return reg.get(name) if name in reg else None


def _reads(kind: str, fieldname: str) -> Callable[[Any], bool]:
    """``applies`` rule: the chosen learner / dataset / backbone declares that it reads this field."""
    def rule(cfg) -> bool:
        if kind == "learner":
            spec = _spec(registry.learners, cfg.learner.name)
        elif kind == "dataset":
            spec = _spec(registry.datasets, cfg.data.dataset)
        else:
            spec = _spec(registry.backbones, resolved_backbone(cfg))
        return spec is None or fieldname in spec.fields
    return rule


def resolved_backbone(cfg) -> str:
    """The backbone ``auto`` stands for, from the data alone: Conv-4 for images, else MLP (the engine's
    :func:`workbench.models.pick_backbone` also looks at the image size)."""
    b = cfg.model.backbone
    if b == "auto":
        ds = _spec(registry.datasets, cfg.data.dataset)
        resized = ds is not None and ds.images and "image_size" in ds.fields
        b = "conv4" if resized and cfg.data.image_size >= 16 else "mlp"
    return b


def _classification(cfg) -> bool:
    return not cfg.is_regression


def _grouped(cfg) -> bool:
    ds = _spec(registry.datasets, cfg.data.dataset)
    return ds is None or ds.groups


def _set_encoder(cfg) -> bool:
    return cfg.embedding.method == "set_encoder"


def _any_ways(cfg) -> bool:
    """The learner may train on episodes of other ways than its test episodes (not with a set encoder,
    which is built for ``task.ways``)."""
    spec = _spec(registry.learners, cfg.learner.name)
    return _classification(cfg) and spec is not None and spec.any_ways and not _set_encoder(cfg)


def learner_names() -> tuple:
    return registry.learners.names()


def dataset_names() -> tuple:
    return registry.datasets.names()


def backbone_choices() -> tuple:
    return ("auto",) + registry.backbones.names()


@dataclass
class DataConfig:
    dataset: str = F("digits", "Where tasks come from: built-in synthetic/bundled data or a path you give",
                     choices=dataset_names, label="Dataset", fixes_episodes=True)
    path: str = F("", "File or folder with the data (Omniglot zip/folder, mini-ImageNet pickles or csv, "
                      "image folder, feature table); empty for built-in data", kind="path", label="Path",
                 applies=_reads("dataset", "path"), fixes_episodes=True)
    image_size: int = F(28, "Images are resized to this many pixels per side", min=8, max=224,
                        label="Image size", applies=_reads("dataset", "image_size"))
    rotations: bool = F(False, "Add 90/180/270-degree rotations of every class as new classes (Omniglot habit)",
                      label="Rotations as classes", applies=_reads("dataset", "rotations"), fixes_episodes=True)
    families: list[str] = F(["sine", "line", "quadratic", "l1norm", "tanh"],
                            "Multimodal regression: which function families tasks are drawn from",
                            choices=("sine", "line", "quadratic", "l1norm", "tanh"), label="Function families",
                            applies=_reads("dataset", "families"), fixes_episodes=True)
    label_column: str = F("label", "Feature tables: the column holding the class label", advanced=True,
                          label="Label column", applies=_reads("dataset", "label_column"), fixes_episodes=True)
    group_column: str = F("group", "Feature tables: the column holding the task/group (family) name",
                          advanced=True, label="Group column", applies=_reads("dataset", "group_column"),
                          fixes_episodes=True)
    noise: float = F(0.0, "Regression: std of Gaussian noise added to targets", min=0.0, max=10.0,
                     advanced=True, label="Target noise", applies=_reads("dataset", "noise"), fixes_episodes=True)


@dataclass
class SplitConfig:
    method: str = F("fraction", "How classes are split into meta-train/val/test: random fractions of classes, "
                                "whole groups (e.g. alphabets), or explicit lists",
                    choices=("fraction", "group", "lists"), label="Method", applies=_classification,
                    fixes_episodes=True)
    train_fraction: float = F(0.6, "Share of classes (or groups) used for meta-training", min=0.05, max=0.95,
                              label="Meta-train share", applies=lambda c: _classification(c) and c.split.method != "lists",
                              fixes_episodes=True)
    val_fraction: float = F(0.2, "Share of classes (or groups) used for meta-validation", min=0.0, max=0.9,
                            label="Meta-val share", applies=lambda c: _classification(c) and c.split.method != "lists",
                            fixes_episodes=True)
    seed: int = F(0, "Seed of the random class split", min=0, max=2**31 - 1, label="Split seed",
                 applies=lambda c: _classification(c) and c.split.method != "lists", fixes_episodes=True)
    train: list[str] = F([], "Explicit meta-train classes or groups (method = lists)", advanced=True, label="Meta-train classes",
                           applies=lambda c: _classification(c) and c.split.method == "lists", fixes_episodes=True)
    val: list[str] = F([], "Explicit meta-validation classes or groups (method = lists)", advanced=True, label="Meta-val classes",
                           applies=lambda c: _classification(c) and c.split.method == "lists", fixes_episodes=True)
    test: list[str] = F([], "Explicit meta-test classes or groups (method = lists)", advanced=True, label="Meta-test classes",
                           applies=lambda c: _classification(c) and c.split.method == "lists", fixes_episodes=True)


@dataclass
class TaskConfig:
    ways: int = F(5, "N: classes per episode (classification)", min=2, max=100, label="Ways (N)",
                 applies=_classification, fixes_episodes=True)
    train_ways: int = F(0, "Classes per meta-training episode; 0: the same as Ways. Metric learners may train "
                           "on more ways than they are tested on (Snell et al.: 60-way training for 5-way "
                           "Omniglot tests); validation and test episodes keep Ways", min=0, max=1000,
                        label="Training ways", advanced=True, applies=_any_ways)
    shots: int = F(1, "K: labelled support examples per class (points per task for regression)",
                   min=1, max=100, label="Shots (K)", fixes_episodes=True)
    queries: int = F(15, "Query examples per class used to score adaptation (points per task for regression)",
                     min=1, max=200, label="Queries", fixes_episodes=True)
    within_group: bool = F(False, "Draw all classes of an episode from one group (e.g. one alphabet), so each "
                                  "task has a single family", advanced=True,
                              label="One group per episode", applies=lambda c: _classification(c) and _grouped(c),
                              fixes_episodes=True)


@dataclass
class ModelConfig:
    backbone: str = F("auto", "Network: MLP for vectors, Conv-4 or ResNet-12 for images (auto picks by data)",
                      choices=backbone_choices, label="Backbone")
    hidden: list[int] = F([40, 40], "MLP: hidden layer widths", label="Hidden widths",
                          applies=_reads("backbone", "hidden"))
    filters: int = F(64, "Conv-4: filters per layer (ResNet-12 uses 64-160-320-640 scaled by filters/64)",
                     min=4, max=512, label="Filters", applies=_reads("backbone", "filters"))
    norm: str = F("batch", "Normalisation: batch statistics of the current batch only (as in reference MAML), "
                           "GroupNorm, or none", choices=("batch", "group", "none"), label="Normalisation",
                   applies=_reads("backbone", "norm"))


@dataclass
class LearnerConfig:
    name: str = F("protonet", "Meta-learning algorithm", choices=learner_names, label="Algorithm")
    first_order: bool = F(False, "MAML/ANIL/Meta-SGD: drop second-order terms of the meta-gradient",
                           label="First order", applies=_reads("learner", "first_order"))
    inner_steps: int = F(1, "Inner-loop gradient steps on the support set during meta-training", min=0, max=100,
                       label="Inner steps", applies=_reads("learner", "inner_steps"))
    inner_lr: float = F(0.4, "Inner-loop learning rate during meta-training", min=1e-6, max=100.0,
                         label="Inner learning rate", applies=_reads("learner", "inner_lr"))
    test_inner_steps: int = F(3, "Inner-loop steps when adapting to a test task", min=0, max=1000,
                            label="Test inner steps", applies=_reads("learner", "test_inner_steps"))
    test_inner_lr: float = F(0.4, "Inner-loop learning rate when adapting to a test task", min=1e-6, max=100.0,
                              label="Test inner learning rate", applies=_reads("learner", "test_inner_lr"))
    meta_lr: float = F(1e-3, "Outer (meta) learning rate of Adam (Reptile steps with reptile_epsilon instead)", min=1e-7, max=10.0,
                      label="Meta learning rate")
    meta_batch: int = F(4, "Tasks per meta-step", min=1, max=1024, label="Tasks per meta-step")
    reptile_epsilon: float = F(1.0, "Reptile: outer step size towards adapted weights", min=1e-4, max=1.0,
                               advanced=True, label="Reptile epsilon", applies=_reads("learner", "reptile_epsilon"))
    matching_fce: bool = F(False, "Matching Networks: full-context embeddings (bidirectional LSTM)",
                           advanced=True, label="Full-context embeddings", applies=_reads("learner", "matching_fce"))
    distance: str = F("euclidean", "ProtoNet: distance between query features and prototypes",
                      choices=("euclidean", "cosine"), advanced=True, label="Distance",
                      applies=_reads("learner", "distance"))
    checkpoint_inner: bool = F(False, "MAML family, second order: recompute each inner step during the backward "
                                      "pass (gradient checkpointing) instead of keeping its activations; less "
                                      "memory for many inner steps, more time", advanced=True,
                                  label="Checkpoint inner loop", applies=_reads("learner", "checkpoint_inner"))


@dataclass
class EmbeddingConfig:
    method: str = F("prototype", "Task embedding recorded at each evaluation",
                    choices=("none", "prototype", "fisher", "set_encoder"), label="Method")
    dim: int = F(32, "Set encoder: size of the learned task embedding", min=2, max=1024, advanced=True,
                 label="Dimension", applies=_set_encoder)
    encoder: str = F("auto", "Set encoder: deepsets (mean over points), gru (bidirectional GRU over the points "
                             "sorted by x; 1-D regression), auto (gru for regression, else deepsets)",
                     choices=("auto", "deepsets", "gru"), advanced=True, label="Set encoder",
                     applies=_set_encoder)


@dataclass
class TrainConfig:
    steps: int = F(300, "Meta-training steps", min=1, max=10_000_000, label="Steps")
    eval_every: int = F(100, "Validate on meta-val every this many steps (0: never)", min=0, max=10_000_000,
                        label="Validate every")
    val_episodes: int = F(100, "Episodes per validation", min=1, max=100_000,
                          label="Validation episodes", applies=lambda c: c.train.eval_every > 0)
    log_every: int = F(10, "Report training metrics every this many steps", min=1, max=100_000,
                       label="Log every")
    checkpoint_every: int = F(0, "Save a resumable checkpoint every this many steps (0: only at the end)",
                              min=0, max=10_000_000, advanced=True, label="Checkpoint every")
    seed: int = F(0, "Seed of the run: model initialisation and task sampling", min=0, max=2**31 - 1,
                  label="Seed")
    device: str = F("auto", "Where to train: auto picks CUDA when present", choices=("auto", "cpu", "cuda"),
                    label="Device")
    strategy: str = F("auto", "How a meta-batch is computed: vmap over tasks, a Python loop, or auto",
                      choices=("auto", "vmap", "loop"), advanced=True, label="Strategy")
    threads: int = F(0, "CPU threads for torch (0: one for MLPs, torch's default for convolutions)", min=0, max=256,
                     advanced=True, label="CPU threads")
    precision: str = F("float32", "Arithmetic of meta-training: float32, or bfloat16 autocast (first-order "
                                  "learners and ProtoNet only; second-order MAML stays float32)",
                       choices=("float32", "bfloat16"), advanced=True, label="Precision")
    memory_limit_mb: int = F(0, "Memory a meta-step may use, in MB (0: the device's free memory); a probe step "
                                "estimates the need before training and says what to change when it does not fit",
                             min=0, max=10_000_000, advanced=True, label="Memory limit (MB)")


@dataclass
class EvalConfig:
    episodes: int = F(600, "Test episodes of the final evaluation (the field uses 600)", min=1, max=100_000,
                     label="Test episodes")
    seed: int = F(1234, "Seed of the fixed test episodes; same seed, same tasks across sessions",
                  min=0, max=2**31 - 1, label="Test seed", fixes_episodes=True)


@dataclass
class ExperimentConfig:
    name: str = F("experiment", "A short name for the run", label="Name")
    plugins: list[str] = F([], "Python modules to import before the config is read; each registers its own "
                               "learners, backbones or data sources (see docs/plugins.md)", advanced=True,
                           label="Plugin modules")
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # the own options of components that declare some (section name = component name), made on first use
    options: dict = field(default_factory=dict, repr=False, compare=False)

    # -- convenience -------------------------------------------------------
    @property
    def is_regression(self) -> bool:
        spec = _spec(registry.datasets, self.data.dataset)
        return spec is not None and spec.kind == "regression"

    @property
    def train_ways(self) -> int:
        """The ways of meta-training episodes: ``task.train_ways`` where it is set and applies (a
        learner that declares ``any_ways``), else ``task.ways``."""
        return self.task.train_ways if self.task.train_ways and _any_ways(self) else self.task.ways

    def to_dict(self) -> dict:
        return to_dict(self)

    def to_toml(self) -> str:
        return to_toml(self)

    def section(self, name: str):
        """A config section by name: a built-in one, or a component's own options."""
        if name in SECTIONS:
            return getattr(self, name)
        if name not in self.options:
            spec = option_specs().get(name)
            if spec is None:
                raise KeyError(name)
            self.options[name] = spec.options()
        return self.options[name]

    def get(self, key: str) -> Any:
        section, _, name = key.rpartition(".")
        obj = self.section(section) if section else self
        return getattr(obj, name)

    def set(self, key: str, value: Any) -> None:
        section, _, name = key.rpartition(".")
        setattr(self.section(section) if section else self, name, value)

    def components(self) -> dict:
        """The registry specs this config uses, by kind ("learner", "dataset", "backbone")."""
        return registry.components_of(self)


def option_specs() -> dict:
    """Registered components with their own config options: section name -> spec."""
    out = {}
    for reg in registry.REGISTRIES.values():
        for name, spec in reg.all().items():
            if spec.options is not None:
                out[name] = spec
    return out


def active_option_sections(cfg: ExperimentConfig) -> list[str]:
    """The options sections of the components ``cfg`` uses (written to its TOML)."""
    specs = option_specs()
    return [s.name for s in cfg.components().values() if s.name in specs]


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
    label: str = ""
    applies_rule: Callable | None = None
    fixes_episodes: bool = False

    def applies(self, cfg: ExperimentConfig) -> bool:
        """Whether ``cfg`` uses this field (a field that does not apply is hidden and not range-checked)."""
        if self.section and self.section not in SECTIONS:       # a component's options: when it is chosen
            if self.section not in active_option_sections(cfg):
                return False
        return self.applies_rule is None or bool(self.applies_rule(cfg))


@functools.lru_cache(maxsize=None)
def _declared_fields(cls, section: str) -> tuple[FieldInfo, ...]:
    """The fields a section's dataclass declares (type hints are evaluated once per class)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not section and (f.name in SECTIONS or f.name == "options"):
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
                             m.get("advanced", False), m.get("label") or f.name.replace("_", " ").capitalize(),
                             m.get("applies"), m.get("fixes_episodes", False)))
    return tuple(out)


def _fields_of(cls, section: str) -> list[FieldInfo]:
    # choices given as a function (names that plugins extend) are read anew on every call
    return [dataclasses.replace(fi, choices=tuple(fi.choices())) if callable(fi.choices) else fi
            for fi in _declared_fields(cls, section)]


_SECTION_CLASSES = {sec: type(getattr(ExperimentConfig(), sec)) for sec in SECTIONS}


def schema() -> list[FieldInfo]:
    """Every field of the experiment config, in form order, components' own options last."""
    out = _fields_of(ExperimentConfig, "")
    for sec in SECTIONS:
        out += _fields_of(_SECTION_CLASSES[sec], sec)
    for name, spec in option_specs().items():
        out += _fields_of(spec.options, name)
    return out


def field_info(key: str) -> FieldInfo:
    section, _, _ = key.rpartition(".")
    if section in SECTIONS or not section:
        fields = _fields_of(_SECTION_CLASSES[section] if section else ExperimentConfig, section)
    else:
        spec = option_specs().get(section)
        fields = _fields_of(spec.options, section) if spec is not None else []
    for fi in fields:
        if fi.key == key:
            return fi
    raise KeyError(key)


def episode_keys() -> tuple[str, ...]:
    """Fields that decide which test episodes a session is scored on (for paired comparisons)."""
    return tuple(fi.key for fi in schema() if fi.fixes_episodes)


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain NUL characters"
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        return "must be valid Unicode text"
    return None


def check_value(fi: FieldInfo, value: Any, *, ranges: bool = True) -> Problem | None:
    """A :class:`Problem` if ``value`` is not allowed for field ``fi``, else None (``ranges=False``: the
    type only, for fields that do not apply)."""
    def bad(what):
        return _problem(fi.key, what, value)

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
        if (msg := _text_problem(value)):
            return bad(msg)
    elif fi.type is list:
        if not isinstance(value, list):
            return bad(f"must be a list of {fi.item_type.__name__}")
        for v in value:
            ok = isinstance(v, fi.item_type) and not isinstance(v, bool)
            if fi.item_type is float:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not ok:
                return bad(f"every item must be {fi.item_type.__name__}")
            if isinstance(v, str) and (msg := _text_problem(v)):
                return bad(msg)
            if ranges and fi.choices and v not in fi.choices:
                return bad(f"{v!r} is not one of {', '.join(map(str, fi.choices))}")
            if ranges and fi.item_type is int and (v < 1 or v > 100_000):
                return bad("every item must be between 1 and 100000")
        return None
    if not ranges:
        return None
    if fi.choices is not None and value not in fi.choices:
        hint = difflib.get_close_matches(str(value), [str(c) for c in fi.choices], n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        return bad(f"must be one of {', '.join(map(str, fi.choices))}{extra}")
    if fi.min is not None and value < fi.min:
        return bad(f"must be at least {fi.min:g}" + (f" and at most {fi.max:g}" if fi.max is not None else ""))
    if fi.max is not None and value > fi.max:
        return bad(f"must be at most {fi.max:g}" + (f" and at least {fi.min:g}" if fi.min is not None else ""))
    return None


def validate(cfg: ExperimentConfig) -> list[Problem]:
    """All problems with ``cfg``: one :class:`Problem` per bad field, plus cross-field checks. Fields
    that do not apply to the chosen learner, data and backbone are type-checked only."""
    problems = []
    for fi in schema():
        if fi.section and fi.section not in SECTIONS and fi.section not in active_option_sections(cfg):
            continue
        p = check_value(fi, cfg.get(fi.key), ranges=fi.applies(cfg))
        if p:
            problems.append(p)
    if problems:
        return problems
    d, lr = cfg.data, cfg.learner
    lspec = registry.learners.get(lr.name)
    dspec = registry.datasets.get(d.dataset)
    bname = resolved_backbone(cfg)
    bspec = _spec(registry.backbones, bname)
    if dspec.needs_path and not d.path.strip():
        detail = f"the {dspec.label} data set ({d.dataset}) is read from a path you give"
        problems.append(_problem("data.path", "is empty: " + detail, message=f"data.path is empty: {detail}"))
    if cfg.is_regression and not lspec.regression:
        able = [n for n, s in registry.learners.all().items() if s.regression]
        problems.append(_problem("learner.name", f"{lspec.label} cannot do regression ({d.dataset}); "
                                 f"use {', '.join(able)}", lr.name))
    if bspec is not None and bspec.images and not dspec.images:
        problems.append(_problem("model.backbone", f"{dspec.label} data are vectors, not images; use mlp or auto",
                                 cfg.model.backbone))
    if cfg.task.train_ways == 1 and _any_ways(cfg):
        problems.append(_problem("task.train_ways", "must be 0 (the same as Ways) or at least 2", 1))
    if d.dataset == "multimodal" and not d.families:
        problems.append(_problem("data.families", "pick at least one function family", d.families))
    if len(set(d.families)) != len(d.families):
        problems.append(_problem("data.families", "each family at most once", d.families))
    s = cfg.split
    if s.method != "lists" and s.train_fraction + s.val_fraction >= 1.0 and not cfg.is_regression:
        total = f"{s.train_fraction + s.val_fraction:g}"
        rest = "must be below 1 so that some classes are left for meta-test"
        problems.append(_problem("split.train_fraction", f"meta-train share + meta-val share = {total}: {rest}",
                                 message=f"split.train_fraction + split.val_fraction = {total}: {rest}"))
    if s.method == "lists" and not cfg.is_regression and (not s.train or not s.test):
        problems.append(_problem("split.method", "needs non-empty split.train and split.test lists", s.method))
    if s.method == "lists":
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            both = set(getattr(s, a)) & set(getattr(s, b))
            if both:
                problems.append(_problem(f"split.{b}", f"shares {sorted(both)[:5]} with split.{a}: a class "
                                         "belongs to one split"))
    if s.method == "group" and not cfg.is_regression and not dspec.groups:
        problems.append(_problem("split.method", f"{dspec.label} has no class groups; use fraction or lists",
                                 s.method))
    if cfg.embedding.method == "set_encoder" and not lspec.modulated:
        able = [n for n, sp in registry.learners.all().items() if sp.modulated]
        problems.append(_problem("embedding.method", f"conditions the backbone with FiLM and works with "
                                 f"{', '.join(able)}, not {lr.name!r}", cfg.embedding.method))
    if cfg.embedding.encoder == "gru" and not cfg.is_regression:
        problems.append(_problem("embedding.encoder", "reads support points sorted by x and needs regression "
                                 "data; use deepsets or auto", cfg.embedding.encoder))
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


def from_dict(d: dict, *, strict: bool = True, validate_values: bool = True,
              base: ExperimentConfig | None = None) -> ExperimentConfig:
    """Build and validate a config from a nested dict (as read from TOML).

    ``validate_values=False`` still refuses unknown fields and wrong types but skips the
    range and cross-field checks: for presets that the user completes (an empty data.path), and
    for configs stored in sessions, which are read as they were written, never re-judged by
    today's ranges."""
    if not isinstance(d, dict):
        raise ConfigError([f"config must be a table of sections, got {type(d).__name__}"])
    import copy
    cfg = copy.deepcopy(base) if base is not None else ExperimentConfig()   # fields d leaves out come from base
    problems: list = []
    plugins = d.get("plugins", [])
    if isinstance(plugins, list) and all(isinstance(m, str) for m in plugins):
        problems += [Problem("plugins", m, m) for m in registry.import_plugins(plugins)]
    options = option_specs()
    known_top = [f.name for f in dataclasses.fields(ExperimentConfig) if f.name != "options"] + ["schema_version"]
    for key, value in d.items():
        if key == "schema_version":
            if value != SCHEMA_VERSION and strict:
                problems.append(_problem("schema_version", f"this program reads config version {SCHEMA_VERSION}",
                                         value))
            continue
        if key in SECTIONS or key in options:
            if not isinstance(value, dict):
                msg = f"[{key}] must be a section (a table), got {value!r}"
                problems.append(Problem(key, msg, msg))
                continue
            sec = cfg.section(key)
            names = [f.name for f in dataclasses.fields(sec)]
            for k, v in value.items():
                if k not in names:
                    hint = difflib.get_close_matches(k, names, n=1)
                    msg = f"unknown field {key}.{k}" + (f" (did you mean {key}.{hint[0]}?)" if hint else "")
                    problems.append(Problem(f"{key}.{k}", msg, msg))
                    continue
                setattr(sec, k, _coerce(field_info(f"{key}.{k}"), v))
        elif key in known_top:
            setattr(cfg, key, _coerce(field_info(key), value))
        else:
            hint = difflib.get_close_matches(key, known_top + list(options), n=1)
            extra = (f" (did you mean {hint[0]!r}?)" if hint else
                     "; if a plugin provides it, install the plugin or name its module in 'plugins'"
                     if isinstance(value, dict) else "")
            msg = f"unknown section or field {key!r}{extra}"
            problems.append(Problem(key, msg, msg))
    if problems:
        raise ConfigError(problems)
    if not validate_values:
        type_problems = [p for fi in schema() if (fi.section in SECTIONS or not fi.section
                                                  or fi.section in cfg.options)
                         and (p := check_value(fi, cfg.get(fi.key), ranges=False))]
        if type_problems:
            raise ConfigError(type_problems)
        return cfg
    return check(cfg)


def to_dict(cfg: ExperimentConfig) -> dict:
    """The config as nested dicts: the built-in sections and the options of the components it uses."""
    d = {"schema_version": SCHEMA_VERSION}
    for f in dataclasses.fields(cfg):
        if f.name != "options":
            v = getattr(cfg, f.name)
            d[f.name] = dataclasses.asdict(v) if dataclasses.is_dataclass(v) else (list(v) if isinstance(v, list) else v)
    if not cfg.plugins:
        d.pop("plugins")
    for name in active_option_sections(cfg):
        d[name] = dataclasses.asdict(cfg.section(name))
    return d


def to_toml(cfg: ExperimentConfig) -> str:
    return tomli_w.dumps(to_dict(cfg))


def from_toml(text: str, *, source: str = "config", complete: bool = True, partial: bool = False) -> ExperimentConfig:
    """A config from TOML text. ``partial=True`` (a file a user wrote): the fields it leaves out come
    from the default experiment when it names no data set (an empty file is the default experiment),
    else from the schema's defaults; a partial file that then cannot run says what it left out."""
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{source} is not valid TOML: {e}"]) from None
    data = d.get("data")
    names_dataset = isinstance(data, dict) and "dataset" in data
    base = default_config() if partial and not names_dataset else None
    try:
        return from_dict(d, validate_values=complete, base=base)
    except ConfigError as e:
        given = sum(len(v) if isinstance(v, dict) else 1 for k, v in d.items() if k != "schema_version")
        total = len([fi for fi in schema() if fi.section in SECTIONS or not fi.section])
        if not partial or given >= total:
            raise
        origin = "the default experiment" if base is not None else "the schema's defaults"
        raise ConfigError(e.items + [Problem("", f"{source} sets {given} of {total} fields; the others came from "
                                               f"{origin}. Set them in the file, or start from a complete "
                                               f"config: workbench config PRESET > my.toml")]) from None


def load(path: str | Path, *, complete: bool = True, partial: bool = False) -> ExperimentConfig:
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
    return from_toml(text, source=f"config file {str(p)!r}", complete=complete, partial=partial)


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


def _assign(d: dict, key: str, value: Any) -> None:
    sec, _, name = key.rpartition(".")
    (d.setdefault(sec, {}) if sec else d)[name] = value


def with_overrides(cfg: ExperimentConfig, assignments: list[str]) -> ExperimentConfig:
    """Apply ``key=value`` strings (as given to ``--set``) and validate."""
    d = to_dict(cfg)
    problems = []
    for a in assignments:          # plugins first: their components' fields are known only once loaded
        key, _, value = a.partition("=")
        if key.strip() == "plugins":
            problems += registry.import_plugins(parse_value(field_info("plugins"), value))
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
        _assign(d, key, v)
    if problems:
        raise ConfigError(problems)
    return from_dict(d)


def replace(cfg: ExperimentConfig, *, validate_values: bool = True, **changes: Any) -> ExperimentConfig:
    """A copy of ``cfg`` with dotted keys changed, e.g. replace(cfg, **{"train.steps": 5})."""
    d = to_dict(cfg)
    for key, v in changes.items():
        _assign(d, key.replace("__", "."), v)
    return from_dict(d, validate_values=validate_values)


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


DEFAULT_PRESET = "omniglot_sample_protonet"


def default_config() -> ExperimentConfig:
    """The ready default experiment: ProtoNet on the Omniglot sample that ships (five alphabets)."""
    return load_preset(DEFAULT_PRESET)
