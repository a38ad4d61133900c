"""Markdown for the lessons' tables (``summary.md``, the claims tables of README.md and docs/lessons.md)."""

from __future__ import annotations


def cell(text: object) -> str:
    """``text`` as one table cell: a ``|`` in it (``mean |grad|``) is escaped, or it would end the cell."""
    return str(text).replace("|", "\\|")
