"""The student search (stage `search`, `compress search`, `compress.search`): a space over the
student's model fields, the distillation recipe, the prune ratio and the int8 setting
(space.py); an Optuna study in any Optuna storage (study.py); one trial run as a
cheap-to-expensive ladder with its folder keyed by the trial's content hash (trial.py); the
Pareto front of val accuracy against ORT latency and the pick (pareto.py)."""

import sys

from compress import SearchPackage

sys.modules[__name__].__class__ = SearchPackage
