"""Optional features and the packages they need.

Not everyone needs UMAP projections, so their packages are
optional extras of the distribution (``pyproject.toml``,
``[project.optional-dependencies]``). Code that needs one asks for it here::

    umap = extras.require("umap", "umap")        # the module, or MissingExtra

and a user without the package gets one sentence naming the extra to install,
instead of a bare ``ModuleNotFoundError`` from deep inside a projection.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: The distribution's name on PyPI (what ``pip install`` takes).
DISTRIBUTION = "meta-learning-workbench"

#: Extra -> (what it is for, the packages it installs as import names).
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "umap": ("UMAP projections of task embeddings", ("umap",)),
}


class MissingExtra(ImportError):
    """A feature's optional package is not installed; the message says which extra brings it."""

    def __init__(self, extra: str, package: str, feature: str, cause: BaseException | None = None):
        self.extra, self.package, self.feature = extra, package, feature
        why = f" ({cause})" if cause is not None and not isinstance(cause, ModuleNotFoundError) else ""
        super().__init__(f"{feature} needs the optional extra '{extra}' (package '{package}' is not "
                         f"installed{why}): pip install '{DISTRIBUTION}[{extra}]'", name=package)


def install_hint(extra: str) -> str:
    """The pip command that installs an extra."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def require(extra: str, package: str, feature: str | None = None) -> ModuleType:
    """Import ``package`` (an import name, e.g. ``"umap"``) or raise :class:`MissingExtra`.

    ``extra`` names the optional extra that installs it (``"umap"``);
    ``feature`` the thing the user asked for, for the message (defaults to the
    extra's description).
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown optional extra {extra!r}; extras: {', '.join(EXTRAS)}")
    feature = feature or EXTRAS[extra][0]
    try:
        return importlib.import_module(package)
    except ImportError as e:
        # a missing package, or one installed but broken (e.g. a missing native library)
        raise MissingExtra(extra, package, feature, cause=e) from e


def available(extra: str) -> bool:
    """Whether every package of an extra imports (for greying out a menu entry, say)."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown optional extra {extra!r}; extras: {', '.join(EXTRAS)}")
    for pkg in EXTRAS[extra][1]:
        try:
            importlib.import_module(pkg)
        except ImportError:
            return False
    return True
