"""Hydra entry points that tie scenes, mining, training and evaluation together.

Importing the package registers the built-in agents (:mod:`experiments.agents`: ``vla``, ``mlp``) and methods
(:mod:`experiments.methods`: the planners and the learned rows) in :mod:`experiments.registry`."""

import experiments.agents  # noqa: F401
import experiments.methods  # noqa: F401
