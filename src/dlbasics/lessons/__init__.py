"""The lessons of the catalogue (docs/lessons.md), each a set of Lightning runs with comparison figures and a summary.

A lesson module declares ``RUNS`` (its runs: a config of ``configs/`` plus overrides each) and ``run(ctx)``; it may
add arguments of its own (``add_arguments``, ``handle_arguments``, see ``dlbasics.lessons.cli``). Registering it
here is one line.

From Python (a notebook): ``from dlbasics.lessons import run_lesson`` (see ``dlbasics.lessons.api``). It is loaded
on first use, so importing this package stays instant (``dlbasics lesson --list`` imports no Lightning).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

API = ("run_lesson", "run_lessons", "LessonResult", "LessonClaim")  # from dlbasics.lessons.api, loaded on first use


def __getattr__(name: str) -> Any:
    if name in API:
        return getattr(importlib.import_module("dlbasics.lessons.api"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])


@dataclass(frozen=True)
class Lesson:
    """A lesson: its command name, its code in the catalogue, and the module whose ``run(ctx)`` reruns it."""

    name: str
    code: str
    title: str
    module: str

    def load(self):  # noqa: ANN201 (a module with run(ctx))
        return importlib.import_module(f"dlbasics.lessons.{self.module}")


LESSONS: dict[str, Lesson] = {lesson.name: lesson for lesson in (
    Lesson("activations", "L1", "Activation functions", "activations"),
    Lesson("backprop", "L2", "Backpropagation and vanishing gradients", "backprop_lesson"),
    Lesson("overfitting", "L3", "Overfitting and underfitting", "overfitting"),
    Lesson("dropout", "L4", "Dropout and weight decay", "dropout"),
    Lesson("regularization", "L5", "Regularization in the training loop", "regularization"),
    Lesson("mnist", "L6", "MNIST with a shallow net", "mnist"),
    Lesson("basics", "L7", "Basic deep learning: moons MLP and MNIST CNN", "basics"),
    Lesson("optimizers", "L8", "Optimizers", "optimizers"),
    Lesson("learning_rate", "L9", "The learning rate", "learning_rate"),
    Lesson("initialization", "L10", "Weight initialization", "initialization"),
    Lesson("normalization", "L11", "Normalization and residual connections", "normalization"),
    Lesson("early_stopping", "L12", "Early stopping", "early_stopping"),
)}
