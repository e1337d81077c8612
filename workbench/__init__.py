"""Meta-Learning Workbench: build, run and compare meta-learning experiments."""

__version__ = "0.1.0"


def load_model(path):
    """Load an exported meta-trained model (see :mod:`workbench.store.export`)."""
    from workbench.store.export import load_model as _load
    return _load(path)
