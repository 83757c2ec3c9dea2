"""Every benchmark loader on small files written in the datasets' real formats."""
from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from blip_rl.classification import datasets as D
from blip_rl.classification.datasets import DatasetNotFoundError, Task, load_benchmark, read_idx

RNG = np.random.RandomState(1234)


# -- writers of the real formats ---------------------------------------------------------------

def write_idx(path, arr, *, gz: bool) -> None:
    """IDX: 0, 0, type 0x08 (uint8), ndim; dims as big-endian int32; data."""
    arr = np.asarray(arr, dtype=np.uint8)
    data = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "i" * arr.ndim, *arr.shape) + arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open(path.with_name(path.name + ".gz"), "wb") if gz else open(path, "wb")) as f:
        f.write(data)


def labels_per_class(n_classes: int, per_class: int) -> np.ndarray:
    return np.repeat(np.arange(n_classes), per_class)


def write_mnist_like(folder, *, gz: bool, train_per_class=6, test_per_class=2, seed_offset=0):
    rng = np.random.RandomState(seed_offset)
    for prefix, per in (("train", train_per_class), ("t10k", test_per_class)):
        y = labels_per_class(10, per)
        x = rng.randint(0, 256, size=(len(y), 28, 28))
        write_idx(folder / f"{prefix}-images-idx3-ubyte", x, gz=gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y, gz=gz)


def write_cifar10(root, per_class_batch=2, per_class_test=2):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        y = labels_per_class(10, per_class_test if name == "test_batch" else per_class_batch)
        batch = {b"data": RNG.randint(0, 256, size=(len(y), 3072)).astype(np.uint8), b"labels": y.tolist(),
                 b"batch_label": name.encode()}
        with open(d / name, "wb") as f:
            pickle.dump(batch, f)


def write_cifar100(root, per_class=2):
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    for name in ("train", "test"):
        y = labels_per_class(100, per_class)
        batch = {b"data": RNG.randint(0, 256, size=(len(y), 3072)).astype(np.uint8), b"fine_labels": y.tolist(),
                 b"coarse_labels": (y // 5).tolist()}
        with open(d / name, "wb") as f:
            pickle.dump(batch, f)


def write_svhn(root, per_class=3):
    savemat = pytest.importorskip("scipy.io", reason="scipy writes SVHN's .mat files").savemat
    d = root / "svhn"
    d.mkdir(parents=True)
    for name in ("train", "test"):
        digits = labels_per_class(10, per_class)
        y = np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)  # SVHN labels 0 as 10
        x = RNG.randint(0, 256, size=(32, 32, 3, len(y))).astype(np.uint8)
        savemat(str(d / f"{name}_32x32.mat"), {"X": x, "y": y})


def write_notmnist(root, *, layout: str, per_class=3):
    d = root / "notmnist"
    d.mkdir(parents=True)
    splits = {s: (RNG.randint(0, 256, size=(10 * per_class, 28, 28)).astype(np.uint8), labels_per_class(10, per_class))
              for s in ("train", "test")}
    if layout == "pkl":  # the authors' notmnist_convert files: features (N, 1, H, W)
        for s, (x, y) in splits.items():
            with open(d / f"notmnist_{s}.pkl", "wb") as f:
                pickle.dump({"features": x[:, None], "labels": y}, f)
    elif layout == "npz":
        np.savez(d / "notmnist.npz", x_train=splits["train"][0], y_train=splits["train"][1],
                 x_test=splits["test"][0], y_test=splits["test"][1])
    else:
        Image = pytest.importorskip("PIL.Image", reason="Pillow writes the PNG folders")
        for s, (x, y) in splits.items():
            for i, (img, label) in enumerate(zip(x, y)):
                folder = d / s / "ABCDEFGHIJ"[label]
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(folder / f"{i}.png")
    return splits


def has_pillow() -> bool:
    try:
        import PIL.Image  # noqa: F401
        return True
    except ImportError:
        return False


# -- generic readers ---------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_real_header(tmp_path, gz):
    x = RNG.randint(0, 256, size=(5, 28, 28))
    write_idx(tmp_path / "train-images-idx3-ubyte", x, gz=gz)
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    raw = (gzip.open if gz else open)(path, "rb").read()
    assert struct.unpack(">i", raw[:4])[0] == 2051  # MNIST's image magic number
    np.testing.assert_array_equal(read_idx(path), x)


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04" + b"\x00" * 10)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((4, 3), np.uint8), gz=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-2])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")


def _check_tasks(tasks: list[Task], n_tasks: int, shape: tuple[int, ...]) -> None:
    assert len(tasks) == n_tasks
    for t in tasks:
        assert t.input_shape == shape
        for split in ("train", "valid", "test"):
            x, y = getattr(t, f"x_{split}"), getattr(t, f"y_{split}")
            assert x.dtype == torch.float32 and y.dtype == torch.int64 and len(x) == len(y) > 0
            assert 0 <= int(y.min()) and int(y.max()) < t.n_classes
        assert torch.isfinite(t.x_train).all()


# -- MNIST-based -------------------------------------------------------------------------------

@pytest.mark.parametrize("gz,sub", [(False, ""), (True, "mnist"), (True, "MNIST/raw")])
def test_mnist5(tmp_path, gz, sub):
    write_mnist_like(tmp_path / sub if sub else tmp_path, gz=gz)
    tasks = load_benchmark("mnist5", tmp_path, valid_fraction=0.25)
    _check_tasks(tasks, 5, (1, 28, 28))
    assert [t.name for t in tasks] == ["mnist-0-1", "mnist-2-3", "mnist-4-5", "mnist-6-7", "mnist-8-9"]
    assert all(t.n_classes == 2 for t in tasks)
    # 12 training images per task: int(0.25 * 12) = 3 validate, 9 train; 4 test images.
    assert [len(tasks[0].x_train), len(tasks[0].x_valid), len(tasks[0].x_test)] == [9, 3, 4]
    # Normalization of the authors' loader: (x / 255 - 0.1307) / 0.3081.
    raw = D.load_mnist(tmp_path)["test"][0]
    expected = (raw[0] / 255.0 - 0.1307) / 0.3081  # the first test image is a 0, so task 0's first
    torch.testing.assert_close(tasks[0].x_test[0, 0], torch.as_tensor(expected, dtype=torch.float32))


def test_validation_split_matches_the_authors(tmp_path):
    """sklearn.utils.shuffle(arange(n), random_state=seed) == RandomState(seed).permutation(n)."""
    shuffle = pytest.importorskip("sklearn.utils").shuffle
    n, seed = 50, 3
    np.testing.assert_array_equal(shuffle(np.arange(n), random_state=seed), np.random.RandomState(seed).permutation(n))
    x = torch.arange(n, dtype=torch.float32)[:, None]
    xt, _, xv, _ = D._split_valid(x, torch.zeros(n, dtype=torch.int64), 0.1, seed)
    r = shuffle(np.arange(n), random_state=seed)
    assert xv[:, 0].long().tolist() == r[:5].tolist() and xt[:, 0].long().tolist() == r[5:].tolist()
    xt, _, xv, _ = D._split_valid(x, torch.zeros(n, dtype=torch.int64), 0.0, seed)
    assert xt is xv  # valid_fraction 0: validate on the training set, as the authors' MNIST code


def test_pmnist_permutations(tmp_path):
    write_mnist_like(tmp_path, gz=False, train_per_class=2, test_per_class=1)
    plain = D.load_mnist(tmp_path)["test"][0]
    tasks = load_benchmark("pmnist", tmp_path, valid_fraction=0.0, num_tasks=3)
    _check_tasks(tasks, 3, (1, 28, 28))
    assert all(t.n_classes == 10 for t in tasks)
    base = tasks[0].x_test.reshape(len(plain), -1)
    expected = torch.as_tensor((plain.reshape(len(plain), -1) / 255.0 - 0.1307) / 0.3081, dtype=torch.float32)
    torch.testing.assert_close(base, expected)  # task 0 is plain MNIST (the paper's text)
    r = np.random.RandomState(0).permutation(3)
    for i in (1, 2):
        perm = np.random.RandomState(int(r[i]) * 100 + i).permutation(784)
        torch.testing.assert_close(tasks[i].x_test.reshape(len(plain), -1), base[:, perm])
        torch.testing.assert_close(tasks[i].x_train.reshape(len(tasks[i].x_train), -1),
                                   tasks[0].x_train.reshape(len(tasks[0].x_train), -1)[:, perm])
    first = load_benchmark("pmnist", tmp_path, valid_fraction=0.0, num_tasks=3, permute_first=True)[0]
    perm0 = np.random.RandomState(int(r[0]) * 100).permutation(784)
    torch.testing.assert_close(first.x_test.reshape(len(plain), -1), base[:, perm0])


def test_pmnist_permutation_equals_the_authors_sklearn_shuffle():
    shuffle = pytest.importorskip("sklearn.utils").shuffle
    aux = np.arange(784, dtype=np.float32) * 0.5
    perms = D._permutations(10, 784, seed=0, permute_first=True)
    seeds = shuffle(np.arange(10), random_state=0)
    for i in (0, 4, 9):
        np.testing.assert_array_equal(aux[perms[i]], shuffle(aux, random_state=int(seeds[i]) * 100 + i))


# -- CIFAR -------------------------------------------------------------------------------------

def test_cifar_alt(tmp_path):
    write_cifar10(tmp_path)
    write_cifar100(tmp_path)
    tasks = load_benchmark("cifar-alt", tmp_path, valid_fraction=0.1)
    _check_tasks(tasks, 10, (3, 32, 32))
    order = np.random.RandomState(0).permutation(10)  # HAT's / the authors' task order for seed 0
    names = [f"cifar10-{i}" for i in range(5)] + [f"cifar100-{i}" for i in range(5)]
    assert [t.name for t in tasks] == [names[i] for i in order]
    by_name = {t.name: t for t in tasks}
    assert by_name["cifar10-3"].n_classes == 2 and by_name["cifar100-2"].n_classes == 20
    # CIFAR-100 task 2 holds fine classes 40..59 relabelled 0..19: 2 test images each.
    assert by_name["cifar100-2"].y_test.bincount().tolist() == [2] * 20
    assert len(by_name["cifar10-0"].x_train) + len(by_name["cifar10-0"].x_valid) == 2 * 2 * 5
    alt = load_benchmark("cifar-alt", tmp_path, order="alternating")
    assert [t.name for t in alt][:4] == ["cifar10-0", "cifar100-0", "cifar10-1", "cifar100-1"]
    # Normalization: (x / 255 - mean) / std per channel.
    d = pickle.load(open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb"), encoding="bytes")
    px = d[b"data"][0, 0] / 255.0  # first test image (class 0), red channel, pixel (0, 0)
    assert by_name["cifar10-0"].x_test[0, 0, 0, 0].item() == pytest.approx((px - 125.3 / 255) / (63.0 / 255), abs=1e-5)


def test_cifar_missing_file_names_it(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_4") as info:
        load_benchmark("cifar-alt", tmp_path)
    assert "cs.toronto.edu/~kriz/cifar.html" in str(info.value)


# -- the mixture and its parts -----------------------------------------------------------------

def test_svhn_mat(tmp_path):
    write_svhn(tmp_path)
    data = D.load_svhn(tmp_path)
    x, y = data["train"]
    assert x.shape == (30, 3, 32, 32) and x.dtype == np.uint8
    assert sorted(set(y.tolist())) == list(range(10))  # label 10 became 0


@pytest.mark.parametrize("layout", ["pkl", "npz", "png"])
def test_notmnist_layouts(tmp_path, layout):
    splits = write_notmnist(tmp_path, layout=layout)
    data = D.load_notmnist(tmp_path)
    for s in ("train", "test"):
        x, y = data[s]
        assert x.shape == (30, 28, 28)
        # folders come back sorted by class then file name; same multiset of labels either way
        assert sorted(y.tolist()) == sorted(splits[s][1].tolist())
        if layout != "png":
            np.testing.assert_array_equal(x, splits[s][0])


def test_mixture5(tmp_path):
    write_cifar10(tmp_path)
    write_mnist_like(tmp_path / "mnist", gz=True, train_per_class=4)
    write_mnist_like(tmp_path / "fashion-mnist", gz=False, train_per_class=4, seed_offset=5)
    write_svhn(tmp_path)
    write_notmnist(tmp_path, layout="png" if has_pillow() else "npz")
    tasks = load_benchmark("mixture5", tmp_path, seed=0)
    _check_tasks(tasks, 5, (3, 32, 32))
    order = np.random.RandomState(0).permutation(5)
    assert [t.name for t in tasks] == [D.MIXTURE_NAMES[i] for i in order]
    mnist = {t.name: t for t in tasks}["mnist"]
    # MNIST zero-padded to 32x32 (a border of 2) and repeated over 3 channels.
    border = (0.0 - 0.1) / 0.2752
    assert torch.allclose(mnist.x_test[:, :, :2, :], torch.full_like(mnist.x_test[:, :, :2, :], border))
    assert torch.equal(mnist.x_test[:, 0], mnist.x_test[:, 2])
    fixed = load_benchmark("mixture5", tmp_path, order="fixed")
    assert [t.name for t in fixed] == list(D.MIXTURE_NAMES)


def test_mixture5_reports_a_missing_dataset_first(tmp_path):
    write_cifar10(tmp_path)
    write_mnist_like(tmp_path, gz=False)
    with pytest.raises(DatasetNotFoundError, match="Fashion-MNIST: file train-images-idx3-ubyte") as info:
        load_benchmark("mixture5", tmp_path)
    assert "zalandoresearch/fashion-mnist" in str(info.value)


# -- mini-ImageNet -----------------------------------------------------------------------------

def _miniimagenet_arrays(n_classes=10, train_per=4, test_per=2, size=12):
    return {s: (RNG.randint(0, 256, size=(n_classes * per, size, size, 3)).astype(np.uint8),
                labels_per_class(n_classes, per)) for s, per in (("train", train_per), ("test", test_per))}


def test_miniimagenet_acl_pickles(tmp_path):
    d = tmp_path / "miniimagenet"
    d.mkdir()
    arrays = _miniimagenet_arrays()
    for s, (x, y) in arrays.items():
        with open(d / f"{s}.pkl", "wb") as f:
            pickle.dump({"images": x, "labels": y.tolist()}, f)
    tasks = load_benchmark("miniimagenet", tmp_path, num_tasks=5, valid_fraction=0.25)
    _check_tasks(tasks, 5, (3, 12, 12))
    groups = np.split(np.random.RandomState(0).permutation(10), 5)  # ACL's class split
    t1 = tasks[1]
    assert t1.n_classes == 2 and len(t1.x_test) == 4
    first_class = int(groups[1][0])
    x_expected = arrays["test"][0][arrays["test"][1] == first_class][0]
    mean, std = D.IMAGENET_NORM
    expected = (x_expected[0, 0, 0] / 255.0 - mean[0]) / std[0]
    assert t1.x_test[t1.y_test == 0][0, 0, 0, 0].item() == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="cannot be split"):
        load_benchmark("miniimagenet", tmp_path, num_tasks=3)


@pytest.mark.skipif(not has_pillow(), reason="Pillow writes and reads the image folders")
def test_miniimagenet_image_folders(tmp_path):
    from PIL import Image

    arrays = _miniimagenet_arrays(n_classes=4, train_per=3, test_per=1, size=10)
    for s, (x, y) in arrays.items():
        for i, (img, label) in enumerate(zip(x, y)):
            folder = tmp_path / "miniimagenet" / s / f"n0{label:07d}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i}.png")
    tasks = load_benchmark("miniimagenet", tmp_path, num_tasks=2, image_size=16, valid_fraction=0.0)
    _check_tasks(tasks, 2, (3, 16, 16))  # resized to image_size


def test_miniimagenet_missing_names_the_layouts(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"miniimagenet/train\.pkl"):
        load_benchmark("miniimagenet", tmp_path)


# -- digits (bundled with scikit-learn) --------------------------------------------------------

def test_digits_benchmarks():
    pytest.importorskip("sklearn")
    tasks = load_benchmark("digits5", seed=0)
    _check_tasks(tasks, 5, (1, 8, 8))
    assert [t.name for t in tasks][0] == "digits-0-1" and all(t.n_classes == 2 for t in tasks)
    total = sum(len(t.x_train) + len(t.x_valid) + len(t.x_test) for t in tasks)
    assert total == 1797
    p = load_benchmark("pdigits", seed=0, num_tasks=3)
    _check_tasks(p, 3, (1, 8, 8))
    assert torch.equal(p[0].x_test.flatten(1).sort(1).values, p[1].x_test.flatten(1).sort(1).values)
    assert not torch.equal(p[0].x_test, p[1].x_test)
    again = load_benchmark("digits5", seed=0)
    assert torch.equal(again[2].x_train, tasks[2].x_train)  # seeded, so identical


# -- errors ------------------------------------------------------------------------------------

def test_missing_mnist_file_names_file_and_source(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_benchmark("mnist5", tmp_path)
    msg = str(info.value)
    assert "train-images-idx3-ubyte" in msg and str(tmp_path) in msg and "yann.lecun.com/exdb/mnist" in msg
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)


def test_bad_benchmark_options_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="--data-dir"):
        load_benchmark("pmnist", None)
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmark("mnist10", tmp_path)
    with pytest.raises(ValueError, match="unknown option"):
        load_benchmark("digits5", valid_fraction=0.1, colour=True)
    with pytest.raises(ValueError, match="order"):
        D._task_order(5, "alternating", 0)
