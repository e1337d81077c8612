"""What the program knows about its learners, backbones and data sources, in one place.

Every meta-learner, backbone and data source is described by a *spec*: a small,
torch-free record of what the engine, the config and the forms need to know about
it (which config fields it reads, whether it differentiates through an inner loop,
how many outputs its head has, ...). The engine, the config validator and the GUI
read these declarations; none of them keeps a list of names.

Built-in components are registered by one line each in :data:`BUILTIN_LEARNERS`,
:data:`BUILTIN_BACKBONES` and :data:`BUILTIN_DATASETS`. A researcher's own
component is found

- through a Python entry point in the groups ``workbench.learners``,
  ``workbench.backbones`` and ``workbench.datasets`` (the entry point names a
  spec object, or a class with a ``spec`` attribute), or
- through the config's top-level ``plugins`` list of module names: each module
  is imported and calls :func:`register` at import time.

A spec's ``options`` is a dataclass of the component's own config fields, written
with :func:`workbench.fields.F` like the built-in ones (built-in learners declare it
inline in their registry entry with :func:`section`, so that adding a learner is one
new module and one entry here); the config then carries a section named after the
component (``[relationnet]``) that the form shows when the component is chosen. Sessions record the ``origin`` and ``version`` of every
component that produced them.

This module imports neither torch nor Qt: the window reads it at start-up.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
from dataclasses import MISSING, dataclass, make_dataclass, replace
from typing import Any

from workbench.fields import F

ENTRY_POINT_GROUPS = {"learner": "workbench.learners", "backbone": "workbench.backbones",
                      "dataset": "workbench.datasets"}


class PluginError(ValueError):
    """A plugin that cannot be used, with one sentence saying why."""


@dataclass(frozen=True)
class Spec:
    """What every component declares."""

    name: str
    target: str                    # "module:attribute" of the class (learner, backbone) or loader (dataset)
    label: str                     # shown in forms and tables
    paper: str = ""                # citation, for tooltips and docs
    help: str = ""                 # one line shown under the choice
    fields: tuple[str, ...] = ()   # config fields it reads beyond the ones every component of its kind reads
    options: Any = None            # dataclass of its own config fields (config section named after it)
    origin: str = "workbench"      # distribution that provides it
    version: str = ""              # its version ('' for the program's own)

    def load(self) -> Any:
        """The object ``target`` names (imports its module)."""
        mod, _, attr = self.target.partition(":")
        try:
            obj = importlib.import_module(mod)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as e:  # a plugin's import error is the plugin's fault: say so in one sentence
            raise PluginError(f"{self.name!r} ({self.origin}): cannot load {self.target}: "
                              f"{type(e).__name__}: {e}") from None
        return obj


@dataclass(frozen=True)
class LearnerSpec(Spec):
    """A meta-learner's declaration.

    - ``inner_loop``: adapts by gradient steps on the support set (the inner-loop fields apply);
    - ``second_order``: what its meta-gradient differentiates through, unless ``learner.first_order``:
      "" nothing, "head" the inner gradient of the head only (ANIL), "full" the inner gradient of the
      whole network (MAML, Meta-SGD; the case torch's vmap gets wrong through batch norm);
    - ``always_first_order``: first order whatever the config says (first-order MAML);
    - ``regression``: can learn regression tasks (metric learners cannot);
    - ``head``: outputs of the backbone's head: "ways", "none" (features only) or "train_classes";
    - ``needs_train_classes``: is told the global indices of the meta-train classes before training;
    - ``own_update``: ``train_step`` is its own update rule, not a backward pass of ``meta_loss`` (Reptile);
    - ``modulated``: "module:Class" of its FiLM-modulated variant (``embedding.method = set_encoder``);
    - ``any_ways``: nothing it learns depends on the number of ways, so its meta-training episodes may
      have more (or fewer) ways than its test episodes (``task.train_ways``; Snell et al. train
      ProtoNets 60-way on Omniglot and test 5-way).
    """

    inner_loop: bool = False
    second_order: str = ""
    always_first_order: bool = False
    regression: bool = True
    head: str = "ways"
    needs_train_classes: bool = False
    own_update: bool = False
    modulated: str = ""
    any_ways: bool = False

    def differentiates_inner_gradient(self, lc) -> str:
        """"", "head" or "full": what this run's meta-gradient differentiates through (config ``lc``)."""
        if not self.second_order or self.always_first_order or lc.first_order or lc.inner_steps == 0:
            return ""
        return self.second_order

    def head_outputs(self, ways: int, n_train_classes: int, regression: bool) -> int:
        if self.head == "none":
            return 0
        if regression:
            return 1
        return n_train_classes if self.head == "train_classes" else ways


@dataclass(frozen=True)
class BackboneSpec(Spec):
    """A backbone's declaration; ``target`` is a trunk class ``(input_shape, model_cfg) -> nn.Module``
    with an ``out_dim`` attribute. ``images``: needs (C, H, W) inputs."""

    images: bool = False


@dataclass(frozen=True)
class DatasetSpec(Spec):
    """A data source's declaration; ``target`` is a loader ``(data_cfg) -> ClassDataset`` (classification)
    or, for the built-in regression streams, the task-family module.

    - ``kind``: "classification" or "regression";
    - ``needs_path``: read from ``data.path``;
    - ``images``: images resized to ``data.image_size``;
    - ``groups``: classes come in groups (alphabets, families) that ``split.method = group`` can use.
    """

    kind: str = "classification"
    needs_path: bool = False
    images: bool = False
    groups: bool = False


def section(name: str, doc: str = "", **fields) -> type:
    """A component's own config section declared inline in its spec: ``options=section("R2D2Options",
    init_lambda=F(1.0, "..."), ...)``, field name -> :func:`~workbench.fields.F` in order; each
    field's type is its default's. Torch-free, so the window reads it at start-up."""
    def typed(f):
        default = f.default if f.default is not MISSING else f.default_factory()
        return type(default)
    cls = make_dataclass(name, [(k, typed(f), f) for k, f in fields.items()])
    cls.__doc__ = doc or f"The [{name}] config section."
    cls.__module__ = __name__
    if globals().setdefault(name, cls) is not cls:     # pickled configs find the class here by its name
        raise PluginError(f"two option sections are named {name!r}")
    return cls


def _cosine(cfg) -> bool:          # Baseline's scale applies to its cosine classifier only
    return cfg.section(cfg.learner.name).classifier == "cosine"


def _baseline_options(name: str, classifier: str) -> type:
    return section(name, "Baseline / Baseline++ (Chen et al. 2019): the classifier and its scale.",
                   classifier=F(classifier, "Head of pre-training and fine-tuning: linear (Baseline) or cosine "
                                "similarity with a scale (Baseline++)", choices=("linear", "cosine"),
                                label="Classifier"),
                   scale=F(10.0, "Cosine classifier: the constant the cosine similarities are multiplied by "
                           "before the softmax", min=0.01, max=1000.0, label="Cosine scale", applies=_cosine))


def _msl_on(cfg) -> bool:
    return cfg.section("mamlpp").multi_step_loss


# -- the built-in components: one entry each ----------------------------------------------------------
_INNER = ("inner_steps", "inner_lr", "test_inner_steps", "test_inner_lr")
_MAML = ("first_order",) + _INNER + ("checkpoint_inner",)

BUILTIN_LEARNERS = (
    LearnerSpec("maml", "workbench.learners.maml:MAML", "MAML", "Finn, Abbeel & Levine, ICML 2017",
                "Model-agnostic meta-learning: an initialisation adapted by gradient steps",
                fields=_MAML, inner_loop=True, second_order="full", modulated="workbench.learners.mmaml:ModulatedMAML"),
    LearnerSpec("fomaml", "workbench.learners.maml:MAML", "First-order MAML", "Finn et al. 2017, sec. 5.2",
                "MAML without the second-order terms", fields=_INNER, inner_loop=True, second_order="full",
                always_first_order=True, modulated="workbench.learners.mmaml:ModulatedMAML"),
    LearnerSpec("reptile", "workbench.learners.reptile:Reptile", "Reptile", "Nichol, Achiam & Schulman 2018",
                "Moves the initialisation towards weights adapted by SGD", fields=_INNER + ("reptile_epsilon",),
                inner_loop=True, own_update=True),
    LearnerSpec("protonet", "workbench.learners.protonet:ProtoNet", "Prototypical Networks",
                "Snell, Swersky & Zemel, NeurIPS 2017", "Classifies by distance to class means of features",
                fields=("distance",), regression=False, head="none", any_ways=True,
                modulated="workbench.learners.protonet_film:FiLMProtoNet"),
    LearnerSpec("matching", "workbench.learners.matching:MatchingNet", "Matching Networks",
                "Vinyals et al., NeurIPS 2016", "Attention over the support set's features",
                fields=("matching_fce",), regression=False, head="none", any_ways=True),
    LearnerSpec("anil", "workbench.learners.anil:ANIL", "ANIL", "Raghu et al., ICLR 2020",
                "MAML that adapts the head only", fields=_INNER + ("first_order",), inner_loop=True,
                second_order="head"),
    LearnerSpec("metasgd", "workbench.learners.metasgd:MetaSGD", "Meta-SGD", "Li et al. 2017",
                "MAML with a learned learning rate per weight", fields=_MAML, inner_loop=True,
                second_order="full"),
    LearnerSpec("multitask", "workbench.learners.multitask:MultiTask", "Multi-task baseline",
                "Chen et al., ICLR 2019 (Baseline)", "One classifier over all meta-train classes, "
                "fine-tuned on each test task", fields=("test_inner_steps", "test_inner_lr"),
                head="train_classes", needs_train_classes=True,
                options=_baseline_options("BaselineOptions", "linear")),
    LearnerSpec("baselinepp", "workbench.learners.multitask:MultiTask", "Baseline++", "Chen et al., ICLR 2019 (Baseline++)", "Cosine classifier over all meta-train classes, a new cosine head fine-tuned on each test task", fields=("test_inner_steps", "test_inner_lr"), head="train_classes", needs_train_classes=True, options=_baseline_options("BaselinePPOptions", "cosine")),
    LearnerSpec("r2d2", "workbench.learners.r2d2:R2D2", "R2D2", "Bertinetto, Henriques, Torr & Vedaldi, ICLR 2019", "Closed-form ridge-regression head on the features, differentiated through", head="none", any_ways=True,
                options=section(
        "R2D2Options",
        init_lambda=F(1.0, "Initial ridge regulariser lambda (meta-learned from there when 'learn lambda' is on)",
                      min=1e-6, max=1e6, label="Initial lambda"),
        learn_lambda=F(True, "Meta-learn lambda, as the paper does; off keeps it fixed", label="Learn lambda"),
        init_scale=F(10.0, "Classification: initial value of the learned output scale alpha (ridge outputs lie "
                     "near [0, 1]; the scale spreads them for the softmax)", min=1e-6, max=1e6,
                     label="Initial scale"))),
    LearnerSpec("relationnet", "workbench.learners.relationnet:RelationNet", "Relation Networks", "Sung et al., CVPR 2018", "A learned relation module scores query-support pairs", regression=False, head="none",
                any_ways=True, options=section(
        "RelationOptions",
        hidden=F(64, "Width of the relation module's first layer (on the concatenated class and query features)",
                 min=1, max=4096, label="Relation width"),
        top=F(8, "Width of the relation module's last hidden layer (8 in the paper)", min=1, max=1024,
              label="Relation top width"))),
    LearnerSpec("mamlpp", "workbench.learners.mamlpp:MAMLpp", "MAML++", "Antoniou, Edwards & Storkey, ICLR 2019", "MAML with per-step batch norm, learned per-step rates, multi-step loss and annealing", fields=("first_order", "inner_steps", "inner_lr", "test_inner_steps"), inner_loop=True, second_order="full", options=section(
        "MAMLppOptions", "MAML++ (Antoniou, Edwards & Storkey, ICLR 2019): each of the paper's fixes can be "
        "switched off.",
        multi_step_loss=F(True, "MSL: score the query set after every inner step, with weights that move towards "
                          "the last step's loss as training goes on", label="Multi-step loss"),
        msl_fraction=F(0.1, "Share of meta-training over which the multi-step loss weights anneal; after it only "
                       "the last step's loss counts (the paper: 10 of 100 epochs)", min=0.0, max=1.0,
                       label="Multi-step loss share", applies=_msl_on),
        first_order_fraction=F(0.3, "DA: share of meta-training run first order before switching to second order "
                               "(derivative-order annealing; the paper: the first 50 epochs)", min=0.0, max=1.0,
                               label="First-order share"),
        learn_inner_lr=F(True, "LSLR: meta-learn one inner learning rate per layer and per step (starting at the "
                         "inner learning rate); off keeps them fixed", label="Learn per-step rates"),
        cosine_meta_lr=F(True, "CA: anneal the meta learning rate along a cosine to 1% of its value at the last "
                         "step", label="Cosine meta learning rate"),
        running_stats=F(False, "BNRS at test time: normalise test tasks with per-step running statistics gathered "
                        "in meta-training instead of each batch's own (the authors' code normalises with batch "
                        "statistics)", advanced=True, label="Per-step running stats"))),
    LearnerSpec("protomaml", "workbench.learners.protomaml:ProtoMAML", "Proto-MAML", "Triantafillou et al., ICLR 2020", "MAML whose head starts from the support set's prototypes (first order: fo-Proto-MAML)", fields=_MAML, inner_loop=True, second_order="full", regression=False, head="none", options=section(
        "ProtoMAMLOptions",
        adapt=F("all", "Weights the inner loop adapts after the prototype initialisation: all of them "
                "(Meta-Dataset's Proto-MAML) or the prototype head only (cheaper)", choices=("all", "head"),
                label="Adapted weights"))),
    LearnerSpec("cavia", "workbench.learners.cavia:CAVIA", "CAVIA", "Zintgraf et al., ICML 2019", "Adapts a context vector that modulates one layer, from zero on each task; the weights are meta-learned", fields=("first_order",) + _INNER, inner_loop=True, second_order="full", options=section(
        "CAVIAOptions",
        context_dim=F(16, "Size of the context vector adapted in the inner loop, from zero on every task (the "
                      "paper: 2-5 for regression, 100 for mini-ImageNet)", min=1, max=4096, label="Context size"),
        modulation=F("shift", "How the context enters the first layer: shift (adds W phi to its outputs, the same "
                     "as concatenating phi to an MLP's input) or film (scale and shift, the paper's choice for "
                     "convolutions)", choices=("shift", "film"), label="Context modulation"),
        layer=F("first", "Which layer the context modulates: the trunk's first linear or convolution layer (the "
                "paper's regression networks) or its last one, next to the head", choices=("first", "last"),
                label="Context layer"))),
    LearnerSpec("boil", "workbench.learners.boil:BOIL", "BOIL", "Oh, Yoo, Kim & Yun, ICLR 2021", "MAML that adapts the body only; the head stays frozen in the inner loop", fields=_MAML, inner_loop=True, second_order="full"),
)

BUILTIN_BACKBONES = (
    BackboneSpec("mlp", "workbench.models:MLPTrunk", "MLP", help="Fully connected layers, for vectors",
                 fields=("hidden", "norm")),
    BackboneSpec("conv4", "workbench.models:Conv4Trunk", "Conv-4", "Vinyals et al. 2016",
                 "Four 3x3 convolution blocks, for images", fields=("filters", "norm"), images=True),
    BackboneSpec("resnet12", "workbench.models:ResNet12Trunk", "ResNet-12", "Oreshkin et al. 2018",
                 "Four residual blocks, for larger images", fields=("filters", "norm"), images=True),
)

BUILTIN_DATASETS = (
    DatasetSpec("sinusoid", "workbench.data.synthetic", "Sinusoid regression", "Finn et al. 2017, sec. 5.1",
                "Sine waves of random amplitude and phase", fields=("noise",), kind="regression"),
    DatasetSpec("multimodal", "workbench.data.synthetic", "Multimodal regression", "Vuorio et al. 2019",
                "Tasks from several function families", fields=("noise", "families"), kind="regression",
                groups=True),
    DatasetSpec("digits", "workbench.data.digits:load_from_config", "Handwritten digits (ships)",
                help="scikit-learn's 8x8 digits, ten classes", images=True),
    DatasetSpec("omniglot_sample", "workbench.data.omniglot:load_sample_from_config", "Omniglot sample (ships)",
                "Lake et al. 2015", "5 alphabets, 136 characters of the authors' small background set",
                fields=("image_size", "rotations"), images=True, groups=True),
    DatasetSpec("omniglot", "workbench.data.omniglot:load_from_config", "Omniglot", "Lake et al. 2015",
                "Handwritten characters of many alphabets: zip or folder", fields=("path", "image_size", "rotations"),
                needs_path=True, images=True, groups=True),
    DatasetSpec("miniimagenet", "workbench.data.miniimagenet:load_from_config", "mini-ImageNet",
                "Vinyals et al. 2016; Ravi & Larochelle 2017", "Pickle caches or csv + images",
                fields=("path", "image_size", "rotations"), needs_path=True, images=True),
    DatasetSpec("image_folder", "workbench.data.image_folder:load_from_config", "Image folder",
                help="One folder per class, optionally grouped", fields=("path", "image_size", "rotations"),
                needs_path=True, images=True, groups=True),
    DatasetSpec("feature_table", "workbench.data.feature_table:load_from_config", "Feature table",
                help="CSV or HDF5 rows of features with a label column",
                fields=("path", "label_column", "group_column"), needs_path=True, groups=True),
)


# -- the registries ----------------------------------------------------------------------------------
class Registry:
    """Name -> spec for one kind of component, built-ins first, then entry points, then in-process."""

    def __init__(self, kind: str, builtins: tuple):
        self.kind = kind
        self._builtin = {s.name: s for s in builtins}
        self._extra: dict[str, Spec] = {}
        self._entry_points_read = False
        self._lock = threading.Lock()
        self.problems: list[str] = []     # plugins that could not be loaded, one sentence each

    def _read_entry_points(self):
        with self._lock:
            if self._entry_points_read:
                return
            self._entry_points_read = True
            try:
                eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUPS[self.kind])
            except Exception:  # broken metadata of some unrelated distribution
                eps = ()
            for ep in eps:
                try:
                    obj = ep.load()
                    spec = as_spec(obj, self.kind)
                    dist = getattr(ep, "dist", None)
                    if dist is not None and spec.origin == "workbench":
                        spec = replace(spec, origin=dist.metadata["Name"], version=dist.version)
                    self._add(spec)
                except Exception as e:
                    self.problems.append(f"{self.kind} plugin {ep.name!r} ({ep.value}) was not loaded: "
                                         f"{type(e).__name__}: {e}")

    def _add(self, spec: Spec):
        if spec.name in self._builtin:
            raise PluginError(f"a plugin {self.kind} cannot be named {spec.name!r}: a built-in has that name")
        from workbench.fields import reserved_sections
        if spec.options is not None and spec.name in reserved_sections():
            raise PluginError(f"{self.kind} {spec.name!r}: its options would clash with the config section "
                              f"[{spec.name}]; choose another name")
        self._extra[spec.name] = spec

    def register(self, spec: Spec) -> Spec:
        self._read_entry_points()
        self._add(spec)
        return spec

    def unregister(self, name: str) -> None:
        self._extra.pop(name, None)

    def reload_entry_points(self) -> None:
        """Forget what was found and read the entry points again (after installing a plugin)."""
        with self._lock:
            self._extra.clear()
            self.problems.clear()
            self._entry_points_read = False

    def all(self) -> dict[str, Spec]:
        self._read_entry_points()
        return {**self._builtin, **self._extra}

    def names(self) -> tuple[str, ...]:
        return tuple(self.all())

    def get(self, name: str) -> Spec:
        specs = self.all()
        if name not in specs:
            import difflib
            hint = difflib.get_close_matches(name, list(specs), n=1)
            raise PluginError(f"no {self.kind} named {name!r}; known: {', '.join(specs)}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return specs[name]

    def __contains__(self, name: str) -> bool:
        return name in self.all()


def as_spec(obj: Any, kind: str) -> Spec:
    """A spec from what an entry point names: a spec, or a class/function with a ``spec`` attribute."""
    want = {"learner": LearnerSpec, "backbone": BackboneSpec, "dataset": DatasetSpec}[kind]
    spec = obj if isinstance(obj, Spec) else getattr(obj, "spec", None)
    if not isinstance(spec, want):
        raise PluginError(f"expected a {want.__name__} (or a class with a 'spec' attribute), got {obj!r}")
    return spec


learners = Registry("learner", BUILTIN_LEARNERS)
backbones = Registry("backbone", BUILTIN_BACKBONES)
datasets = Registry("dataset", BUILTIN_DATASETS)
REGISTRIES = {"learner": learners, "backbone": backbones, "dataset": datasets}


def register(spec: Spec) -> Spec:
    """Register a component in-process (a plugin module calls this when it is imported)."""
    if not isinstance(spec, (LearnerSpec, BackboneSpec, DatasetSpec)):
        raise PluginError(f"register() takes a LearnerSpec, BackboneSpec or DatasetSpec, got {spec!r}")
    return REGISTRIES[_kind_of(spec)].register(spec)


_imported_plugins: set[str] = set()


def import_plugins(modules) -> list[str]:
    """Load the config's ``plugins`` entries; returns one sentence per entry that failed.

    ``"package.module:SPEC"`` registers the spec (or class with a ``spec``) that it names;
    ``"package.module"`` is imported and registers its components itself (by :func:`register`)."""
    problems = []
    for m in modules:
        if m in _imported_plugins:
            continue
        mod, _, attr = m.partition(":")
        try:
            obj = importlib.import_module(mod)
            if attr:
                for part in attr.split("."):
                    obj = getattr(obj, part)
                spec = next(as_spec(obj, kind) for kind, cls in (("learner", LearnerSpec), ("backbone", BackboneSpec),
                                                                  ("dataset", DatasetSpec))
                            if isinstance(getattr(obj, "spec", obj), cls))
                if spec.name not in REGISTRIES[_kind_of(spec)].all():
                    register(spec)
            _imported_plugins.add(m)
        except StopIteration:
            problems.append(f"plugins: {m!r} names {obj!r}, which is not a LearnerSpec, BackboneSpec or DatasetSpec")
        except Exception as e:
            problems.append(f"plugins: {m!r} cannot be loaded: {type(e).__name__}: {e}")
    return problems


def _kind_of(spec: Spec) -> str:
    return {LearnerSpec: "learner", BackboneSpec: "backbone", DatasetSpec: "dataset"}[type(spec)]


def components_of(cfg) -> dict[str, Spec]:
    """The specs a config uses, by kind (for validation, forms and provenance)."""
    out = {}
    if cfg.learner.name in learners:
        out["learner"] = learners.get(cfg.learner.name)
    if cfg.data.dataset in datasets:
        out["dataset"] = datasets.get(cfg.data.dataset)
    if cfg.model.backbone in backbones:
        out["backbone"] = backbones.get(cfg.model.backbone)
    return out


def provenance(cfg) -> dict[str, str]:
    """``{"learner": "maml (workbench)", ...}``: who provided each component of a run."""
    return {kind: spec.name + f" ({spec.origin}{' ' + spec.version if spec.version else ''})"
            for kind, spec in components_of(cfg).items()}


__all__ = ["Spec", "LearnerSpec", "BackboneSpec", "DatasetSpec", "Registry", "PluginError", "learners",
           "backbones", "datasets", "register", "import_plugins", "components_of", "provenance"] 
