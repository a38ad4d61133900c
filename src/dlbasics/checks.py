"""The small argument checks every setting goes through: one definition each, one wording of the error.

Each returns the value it checked (converted where said), so ``__init__`` can write ``self.n = check_int(n, "n")``.
Errors name the setting, the bad value and what is allowed.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum`` (a bool is not an int here), else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} {value!r} must be an integer >= {minimum}")
    return value


def check_int_in(value: Any, name: str, low: int, high: int) -> int:
    """``value`` if it is an int in ``[low, high)`` (a bool is not an int here), else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < high:
        raise ValueError(f"{name} {value!r} must be an integer in [{low}, {high})")
    return value


def check_number(value: Any, name: str, minimum: float | None = None) -> float:
    """``value`` as a float if it is a finite real number >= ``minimum`` (a bool is not one), else a ValueError."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or (minimum is not None and value < minimum)):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise ValueError(f"{name} {value!r} must be a finite number{bound}")
    return float(value)


def check_choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``, else a ValueError listing them."""
    if value not in allowed:
        raise ValueError(f"{name} {value!r} is not one of: {', '.join(allowed)}")
    return value


def check_pattern(pattern: str, name: str = "pattern") -> re.Pattern[str]:
    """``pattern`` compiled, or a ValueError that quotes it and the regex error."""
    try:
        return re.compile(pattern)
    except (re.error, TypeError) as err:
        raise ValueError(f"{name} {pattern!r} is not a valid regular expression: {err}") from None


def check_sizes(sizes: Sequence[int], name: str, allow_empty: bool = False) -> list[int]:
    """``sizes`` as a list if every entry is a positive int (and, unless ``allow_empty``, there is one)."""
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Iterable):
        raise ValueError(f"{name} {sizes!r} must be a list of sizes such as [64, 64]")
    sizes = list(sizes)
    if not sizes and not allow_empty:
        raise ValueError(f"{name} must list at least one size, got {sizes!r}")
    if any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in sizes):
        raise ValueError(f"{name} must be positive integers, got {sizes!r}")
    return sizes


def check_probability(value: float, name: str = "dropout") -> float:
    """``value`` if it is a probability in [0, 1), as dropout needs, else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} {value!r} must be in [0, 1)")
    return float(value)


def check_callable(value: Any, name: str, example: str) -> Callable[..., Any]:
    """``value`` if it can be called (a class or a factory), else a ValueError with an example of one."""
    if not callable(value):
        raise ValueError(f"{name} {value!r} must be a class or a factory, such as {example}")
    return value
