"""Nothing half-written: a run that fails before it has anything to show removes the folders it created."""

from __future__ import annotations

from pathlib import Path


def outermost_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (``path`` itself if only it is missing), or None."""
    missing = None
    while not path.exists():
        missing = path
        if path.parent == path:
            break
        path = path.parent
    return missing
