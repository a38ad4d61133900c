import pytest
import torch

from dlbasics.data import MNISTDataModule
from dlbasics.data.mnist import MNIST_MEAN, MNIST_STD
from dlbasics.data.mnist_files import MNISTFileError


def test_splits_are_uint8_images_with_a_seeded_validation_split(fake_mnist):
    dm = MNISTDataModule(data_dir=fake_mnist, val_size=100, seed=1)
    dm.prepare_data()
    dm.setup()
    shapes = {name: (tuple(x.shape), x.dtype, y.dtype) for name, (x, y) in dm.splits.items()}
    assert shapes == {"train": ((5900, 1, 28, 28), torch.uint8, torch.int64),
                      "val": ((100, 1, 28, 28), torch.uint8, torch.int64),
                      "test": ((1000, 1, 28, 28), torch.uint8, torch.int64)}
    again = MNISTDataModule(data_dir=fake_mnist, val_size=100, seed=1).split("val")[0]
    other = MNISTDataModule(data_dir=fake_mnist, val_size=100, seed=2).split("val")[0]
    assert torch.equal(dm.split("val")[0], again) and not torch.equal(again, other)


def test_batches_become_normalised_float32_after_transfer(fake_mnist):
    dm = MNISTDataModule(data_dir=fake_mnist, val_size=100, batch_size=16)
    x, y = next(iter(dm.train_dataloader()))
    fx, fy = dm.on_after_batch_transfer((x, y), 0)
    assert fx.dtype == torch.float32 and fy is y
    assert torch.allclose(fx, (x.float() / 255 - MNIST_MEAN) / MNIST_STD)
    raw = MNISTDataModule(data_dir=fake_mnist, normalize=False).on_after_batch_transfer(x, 0)
    assert raw.min() >= 0 and raw.max() <= 1


def test_missing_files_without_download_say_where_they_go(tmp_path):
    dm = MNISTDataModule(data_dir=tmp_path, download=False)
    with pytest.raises(MNISTFileError, match="MNIST/raw"):
        dm.prepare_data()


def test_altered_file_is_caught_at_setup(fake_mnist):
    path = fake_mnist / "MNIST/raw/t10k-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(MNISTFileError, match="t10k-images-idx3-ubyte: md5"):
        MNISTDataModule(data_dir=fake_mnist, val_size=100).setup()


def test_truncated_file_is_caught_at_setup(fake_mnist):
    path = fake_mnist / "MNIST/raw/train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(MNISTFileError, match="train-labels-idx1-ubyte"):
        MNISTDataModule(data_dir=fake_mnist, val_size=100).setup()


def test_bad_val_size():
    with pytest.raises(ValueError, match=r"val_size 60000 must be an integer in \[0, 60000\)"):
        MNISTDataModule(val_size=60000)
