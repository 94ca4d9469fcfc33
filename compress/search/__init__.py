"""The student search (stage `search`, `compress search`, `compress.search`): a space over the
student's model fields, the distillation recipe, the prune ratio and the int8 setting
(space.py); an Optuna study in any Optuna storage (study.py); one trial run as a
cheap-to-expensive ladder with its folder keyed by the trial's content hash (trial.py); the
Pareto front of val accuracy against ORT latency and the pick (pareto.py)."""

import sys
import types


class _CallableModule(types.ModuleType):
    """`compress.search` is both this package and the API function: once the package is
    imported, Python binds the name to it, so calling the package runs the search."""

    def __call__(self, *args, **kwargs):
        from compress.api_search import search

        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
