"""Imported once by the local pool's fork server, so that every worker forks with what a run imports
lazily already loaded (measured: the first digits run in a fresh process took 2.5 s, the second 0.5 s;
scikit-learn's datasets, sympy under torch and the learner modules were most of the difference). A
module that fails to import is skipped: the worker imports it itself, or says why."""

import importlib

MODULES = ("workbench.study.runner", "workbench.train.engine", "workbench.store", "workbench.store.cli",
           "workbench.data", "workbench.embeddings", "workbench.learners", "sklearn.datasets", "sympy",
           "torch.func", "safetensors.torch", "h5py")


def _load():
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # optional here; the run will import it, or fail with its own message
            pass
    try:                                # the built-in learners' modules (what registry specs name)
        from workbench import registry
        for spec in registry.learners.all().values():
            if spec.origin == "workbench":
                try:
                    spec.load()
                except Exception:  # a learner that cannot load fails in its own run, with its own message
                    pass
    except Exception:  # the registry itself is the run's business
        pass


_load()
