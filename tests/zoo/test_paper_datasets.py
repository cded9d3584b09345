"""The papers' file-based data sets (binarized-mnist, omniglot, caltech101) read from small files written here in each
real format: shapes, dtypes, split sizes, labels, pixel order on a known asymmetric pattern, checksums; damaged files
give one clear line. And eval.json's provenance block."""
import hashlib
import json
import os

import numpy as np
import pytest
import torch
from scipy.io import savemat

from zoo.data import binarized_mnist, caltech101, load_dataset, local_files, omniglot, torchvision_sets
from zoo.errors import DataError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROW, COL = 0, 5  # the lit pixel of the pattern images: top row, sixth column


def _no_network(*args, **kwargs):
    return False


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setattr(torchvision_sets, "network_available", _no_network)


def _pattern():
    """An asymmetric 28x28 image: one pixel at (0, 5) and an 'L' (column 2 of rows 10..19, then row 19 to column 7).
    Transposed or flipped it lands elsewhere."""
    img = np.zeros((28, 28), dtype=np.uint8)
    img[ROW, COL] = 1
    img[10:20, 2] = 1
    img[19, 2:8] = 1
    return img


def _one_line(err, *fragments):
    msg = str(err.value)
    assert "\n" not in msg, msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


# ------------------------------------------------------------------------------------------------- binarized-mnist

AMAT_SIZES = {"train": 30, "valid": 10, "test": 10}


def _amat_text(bits: np.ndarray) -> str:
    return "".join(" ".join(str(int(v)) for v in row) + "\n" for row in bits)


def _write_amat(folder, seed=0, sizes=AMAT_SIZES):
    """Three .amat files as Larochelle's: one row-major image per line, 784 space-separated 0/1, newline-ended; the
    pattern is the 4th training image and the 2nd test image."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, n in sizes.items():
        bits = (rng.random((n, 784)) < 0.3).astype(np.uint8)
        data[split] = bits
    data["train"][3] = _pattern().reshape(-1)
    data["test"][1] = _pattern().reshape(-1)
    for split, bits in data.items():
        (folder / binarized_mnist.FILES[split]).write_text(_amat_text(bits))
    return data


def test_binarized_mnist_reads_amat_files(tmp_path):
    data = _write_amat(tmp_path / "MNIST_static")
    ds = load_dataset("binarized-mnist", root=str(tmp_path))
    assert ds.name == "binarized-mnist" and ds.binarize == "static" and ds.is_binary
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (30, 10, 10)
    assert ds.image_shape == (1, 28, 28) and ds.dim == 784 and ds.num_classes is None
    for split in ("train", "valid", "test"):
        s = getattr(ds, split)
        assert s.x.dtype == torch.float32 and s.y is None
        np.testing.assert_array_equal(s.x.numpy(), data[split].astype(np.float32))  # the file's bits, unchanged
    img = ds.train.x[3].reshape(ds.image_shape)[0]
    assert img[ROW, COL] == 1 and img[COL, ROW] == 0 and img[19, 7] == 1 and img[7, 19] == 0
    assert int(img.sum()) == 1 + 10 + 5
    assert torch.equal(ds.test.x[1].reshape(28, 28), torch.from_numpy(_pattern()).float())
    for file in binarized_mnist.FILES.values():
        want = hashlib.sha256((tmp_path / "MNIST_static" / file).read_bytes()).hexdigest()
        assert ds.info["files"][file] == want
    assert ds.info["sizes"] == {"train": 30, "valid": 10, "test": 10}
    assert "not the standard 50000/10000/10000" in ds.info["note"] and "not the published" in ds.info["checksum"]
    dynamic = load_dataset("binarized-mnist", binarize="dynamic", seed=3, root=str(tmp_path))
    assert torch.equal(dynamic.train_epoch_x(0), ds.train.x) and torch.equal(dynamic.test.x, ds.test.x)


def test_binarized_mnist_other_folders_and_line_endings(tmp_path):
    data = _write_amat(tmp_path / "BinaryMNIST", seed=1)  # the IWAE code's folder name
    train = tmp_path / "BinaryMNIST" / binarized_mnist.FILES["train"]
    train.write_bytes(train.read_bytes().replace(b"\n", b"\r\n"))  # Windows line endings read the same
    ds = load_dataset("binarized-mnist", root=str(tmp_path))
    np.testing.assert_array_equal(ds.train.x.numpy(), data["train"].astype(np.float32))
    _write_amat(tmp_path / "flat", seed=2)
    ds = load_dataset("binarized-mnist", root=str(tmp_path / "flat"))  # the files right in the root
    assert len(ds.train) == 30


def test_binarized_mnist_published_checksum(tmp_path, monkeypatch):
    _write_amat(tmp_path)
    files = {s: tmp_path / f for s, f in binarized_mnist.FILES.items()}
    real = {s: (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()) for s, p in files.items()}
    monkeypatch.setattr(binarized_mnist, "PUBLISHED", real)  # pretend these are Larochelle's files
    ds = load_dataset("binarized-mnist", root=str(tmp_path))
    assert ds.info["checksum"] == "SHA-256 of every file matches the published one"
    text = files["valid"].read_bytes()
    flipped = text.replace(b"1", b"0", 1)  # same size, one bit flipped
    files["valid"].write_bytes(flipped)
    with pytest.raises(DataError) as err:
        load_dataset("binarized-mnist", root=str(tmp_path))
    _one_line(err, "size of Larochelle's file but not its SHA-256", str(files["valid"].resolve()),
              binarized_mnist.URL + "binarized_mnist_valid.amat")


def test_binarized_mnist_published_sizes_are_lines_of_1568_bytes():
    assert {s: size for s, (size, _) in binarized_mnist.PUBLISHED.items()} == {
        s: n * (784 * 2) for s, n in binarized_mnist.STANDARD.items()}  # 784 digits, 783 spaces, one newline


AMAT_DAMAGE = {
    "truncated last line": (lambda t: t[:-100], "line 10 of", "has 734 values, expected 784"),
    "short line": (lambda t: t[:1565] + t[1567:], "line 1 of", "has 783 values"),  # its last value cut
    "extra column": (lambda t: t.replace("\n", " 0\n", 1), "line 1 of", "has 785 values"),
    "grey value": (lambda t: t.replace("1", "0.5", 1), "holds the value '0.5', expected 0 or 1"),
    "value 2": (lambda t: t.replace("1", "2", 1), "holds the value '2', expected 0 or 1"),
    "blank line": (lambda t: t.replace("\n", "\n\n", 1), "line 2 of", "has 0 values"),
    "empty file": (lambda t: "", "holds no images"),
}


@pytest.mark.parametrize("case", list(AMAT_DAMAGE))
def test_binarized_mnist_damaged_file(tmp_path, case):
    make, *fragments = AMAT_DAMAGE[case]
    _write_amat(tmp_path)
    path = tmp_path / binarized_mnist.FILES["valid"]
    path.write_text(make(path.read_text()))
    with pytest.raises(DataError) as err:
        load_dataset("binarized-mnist", root=str(tmp_path))
    _one_line(err, *fragments, str(path.resolve()), binarized_mnist.URL)


def test_binarized_mnist_missing_names_files_folder_and_url(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("binarized-mnist", root=str(tmp_path / "nowhere"))
    _one_line(err, "no network", str((tmp_path / "nowhere" / "MNIST_static").resolve()),
              *binarized_mnist.FILES.values(), binarized_mnist.URL + "binarized_mnist_train.amat")
    _write_amat(tmp_path / "MNIST_static")
    (tmp_path / "MNIST_static" / "binarized_mnist_test.amat").unlink()
    with pytest.raises(DataError) as err:
        load_dataset("binarized-mnist", root=str(tmp_path))
    _one_line(err, "place binarized_mnist_test.amat in the folder", str((tmp_path / "MNIST_static").resolve()))
    assert "binarized_mnist_train.amat" not in str(err.value)


def test_download_only_with_network(tmp_path, monkeypatch):
    """Missing files are fetched only when the host answers; a failed transfer leaves no partial file."""
    served = {}
    source = tmp_path / "server"
    data = _write_amat(source)

    class Response:
        def __init__(self, body):
            self.body = body

        def read(self, n=-1):
            out, self.body = self.body[:n], self.body[n:]
            return out

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def urlopen(url, timeout=None):
        served[url] = True
        name = url.rsplit("/", 1)[1]
        if name == "binarized_mnist_test.amat" and "fail" in served:
            raise OSError("connection reset")
        return Response((source / name).read_bytes())

    monkeypatch.setattr(torchvision_sets, "network_available", lambda *a, **k: True)
    monkeypatch.setattr(local_files.urllib.request, "urlopen", urlopen)
    root = tmp_path / "root"
    ds = load_dataset("binarized-mnist", root=str(root))
    np.testing.assert_array_equal(ds.valid.x.numpy(), data["valid"].astype(np.float32))
    assert sorted(os.listdir(root / "MNIST_static")) == sorted(binarized_mnist.FILES.values())
    assert len(served) == 3
    (root / "MNIST_static" / "binarized_mnist_test.amat").unlink()
    served["fail"] = True
    with pytest.raises(DataError) as err:
        load_dataset("binarized-mnist", root=str(root))
    _one_line(err, "download of", "connection reset", "place binarized_mnist_test.amat")
    assert sorted(os.listdir(root / "MNIST_static")) == ["binarized_mnist_train.amat", "binarized_mnist_valid.amat"]


# ------------------------------------------------------------------------------------------------------- omniglot

def _write_chardata(path, n_train=30, n_test=10, seed=0, drop=None, **override):
    """A chardata.mat as Burda et al.'s: data (784, N) / testdata (784, M) grey levels in [0, 1], one image per column
    in MATLAB's column-major order (I(:)); target / testtarget (50, N) one-hot alphabets. The pattern is training
    image 7 and test image 0."""
    rng = np.random.default_rng(seed)
    train = rng.random((n_train, 28, 28)) * 0.5
    test = rng.random((n_test, 28, 28)) * 0.5
    train[7] = _pattern()
    test[0] = _pattern()
    y_train, y_test = np.arange(n_train) % 50, (np.arange(n_test) * 7) % 50
    arrays = {"data": np.stack([im.reshape(-1, order="F") for im in train], axis=1),
              "testdata": np.stack([im.reshape(-1, order="F") for im in test], axis=1),
              "target": np.eye(50)[:, y_train], "testtarget": np.eye(50)[:, y_test],
              "targetchar": np.ones((1, n_train))}
    arrays.update(override)
    if drop:
        arrays.pop(drop)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), arrays)
    return train.astype(np.float32), test.astype(np.float32), y_train, y_test


def test_omniglot_reads_chardata(tmp_path):
    path = tmp_path / "OMNIGLOT" / "chardata.mat"
    train, test, y_train, y_test = _write_chardata(path)
    ds = load_dataset("omniglot", binarize="none", root=str(tmp_path))
    valid_idx = np.sort(np.random.RandomState(123).permutation(30)[-2:])  # 1345/24345 of 30 -> 2, as IWAE picks them
    train_idx = np.setdiff1d(np.arange(30), valid_idx)
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (28, 2, 10)
    assert ds.image_shape == (1, 28, 28) and ds.dim == 784 and ds.num_classes == 50
    for s in (ds.train, ds.valid, ds.test):
        assert s.x.dtype == torch.float32 and s.y.dtype == torch.int64
    np.testing.assert_array_equal(ds.train.x.numpy(), train[train_idx].reshape(28, 784))
    np.testing.assert_array_equal(ds.valid.x.numpy(), train[valid_idx].reshape(2, 784))
    np.testing.assert_array_equal(ds.test.x.numpy(), test.reshape(10, 784))
    assert ds.train.y.tolist() == y_train[train_idx].tolist() and ds.test.y.tolist() == y_test.tolist()
    assert ds.valid.y.tolist() == y_train[valid_idx].tolist()
    assert torch.equal(ds.test.x[0].reshape(28, 28), torch.from_numpy(_pattern()).float())  # upright
    k = int(np.flatnonzero(train_idx == 7)[0])
    img = ds.train.x[k].reshape(ds.image_shape)[0]
    assert img[ROW, COL] == 1 and img[COL, ROW] < 0.5 and img[19, 7] == 1
    assert ds.info["files"] == {"chardata.mat": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert ds.info["sizes"] == {"train": 28, "valid": 2, "test": 10}
    assert "not the standard 24345/8070" in ds.info["note"] and "no published SHA-256" in ds.info["checksum"]
    default = load_dataset("omniglot", root=str(tmp_path))
    assert default.binarize == "dynamic" and set(torch.unique(default.test.x).tolist()) == {0.0, 1.0}
    assert default.test.x[0].reshape(28, 28)[ROW, COL] == 1  # a pixel of grey level 1 stays lit


def test_omniglot_papers_validation_carve_out():
    valid = omniglot.validation_indices(24345)
    assert len(valid) == 1345 and np.all(np.diff(valid) > 0)
    assert np.array_equal(valid, np.sort(np.random.RandomState(123).permutation(24345)[-1345:]))
    assert omniglot.validation_indices(30).tolist() == np.sort(np.random.RandomState(123).permutation(30)[-2:]).tolist()
    with pytest.raises(DataError, match="at least 2"):
        omniglot.validation_indices(1)


OMNIGLOT_DAMAGE = {
    "no testdata": (dict(drop="testdata"), "has no variable 'testdata' (found: data, target, targetchar, testtarget)"),
    "no target": (dict(drop="target"), "has no variable 'target'"),
    "783 rows": (dict(data=np.zeros((783, 30))), "'data'", "has shape (783, 30), expected (784, N)"),
    "above 1": (dict(testdata=np.full((784, 10), 2.0)), "'testdata'", "outside [0, 1]"),
    "nan": (dict(data=np.full((784, 30), np.nan)), "NaN or infinite"),
    "labels not one-hot": (dict(target=np.ones((50, 30))), "'target'", "not one-hot"),
    "label count": (dict(target=np.eye(50)[:, :29]), "'target'", "has shape (50, 29), expected (C, 30)"),
    "test classes differ": (dict(testtarget=np.eye(40)[:, :10]), "'testtarget'", "expected (50, 10)"),
    "text in data": (dict(data=np.array(["abc"] * 30)), "not numbers"),
}


@pytest.mark.parametrize("case", list(OMNIGLOT_DAMAGE))
def test_omniglot_damaged_file(tmp_path, case):
    kwargs, *fragments = OMNIGLOT_DAMAGE[case]
    path = tmp_path / "OMNIGLOT" / "chardata.mat"
    _write_chardata(path, **kwargs)
    with pytest.raises(DataError) as err:
        load_dataset("omniglot", root=str(tmp_path))
    _one_line(err, *fragments, str(path.resolve()), omniglot.URL)


def test_omniglot_unreadable_and_missing(tmp_path):
    path = tmp_path / "OMNIGLOT" / "chardata.mat"
    _write_chardata(path)
    path.write_bytes(path.read_bytes()[:300])  # truncated
    with pytest.raises(DataError) as err:
        load_dataset("omniglot", root=str(tmp_path))
    _one_line(err, "cannot read", "as a MATLAB file", omniglot.URL)
    with pytest.raises(DataError) as err:
        load_dataset("omniglot", root=str(tmp_path / "empty"))
    _one_line(err, "place chardata.mat in the folder", str((tmp_path / "empty" / "OMNIGLOT").resolve()), omniglot.URL)


# ----------------------------------------------------------------------------------------------------- caltech101

def _write_caltech(path, sizes=(30, 10, 10), seed=0, drop=None, **override):
    """A caltech101_silhouettes_28_split1.mat as Marlin's: *_data (N, 784) of 0/1, one image per row in MATLAB's
    column-major order; *_labels (N, 1) classes 1..101. The papers flip the bits, so the pattern is written as zeros on
    ones: training image 4, validation image 0."""
    rng = np.random.default_rng(seed)
    splits = {}
    for (key, label_key), n in zip(caltech101.SPLITS.values(), sizes):
        imgs = (rng.random((n, 28, 28)) < 0.3).astype(np.uint8)
        splits[key] = imgs
        splits[label_key] = (np.arange(n) * 13) % 101 + 1
    splits["train_labels"][5] = 101  # the last class
    splits["train_data"][4] = _pattern()
    splits["val_data"][0] = _pattern()
    arrays = {}
    for key, value in splits.items():
        if key.endswith("_data"):
            arrays[key] = np.stack([1 - im.reshape(-1, order="F") for im in value]).astype(np.float64)
        else:
            arrays[key] = value.reshape(-1, 1).astype(np.float64)
    arrays["classnames"] = np.array(["class"] * 101, dtype=object)
    arrays.update(override)
    if drop:
        arrays.pop(drop)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), arrays)
    return splits


def test_caltech101_reads_silhouettes(tmp_path):
    path = tmp_path / "Caltech101Silhouettes" / caltech101.FILE
    splits = _write_caltech(path)
    ds = load_dataset("caltech101", root=str(tmp_path))
    assert ds.binarize == "static" and ds.is_binary
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (30, 10, 10)
    assert ds.image_shape == (1, 28, 28) and ds.dim == 784 and ds.num_classes == 101
    for split, (key, label_key) in caltech101.SPLITS.items():
        s = getattr(ds, split)
        assert s.x.dtype == torch.float32 and s.y.dtype == torch.int64
        np.testing.assert_array_equal(s.x.numpy(), splits[key].reshape(-1, 784).astype(np.float32))
        assert s.y.tolist() == (splits[label_key] - 1).tolist()
    assert ds.train.y[:6].tolist() == [0, 13, 26, 39, 52, 100]  # the file's classes 1..101 less one
    img = ds.train.x[4].reshape(ds.image_shape)[0]
    assert img[ROW, COL] == 1 and img[COL, ROW] == 0 and img[19, 7] == 1 and int(img.sum()) == 16
    assert torch.equal(ds.valid.x[0].reshape(28, 28), torch.from_numpy(_pattern()).float())
    assert ds.info["files"] == {caltech101.FILE: hashlib.sha256(path.read_bytes()).hexdigest()}
    assert ds.info["sizes"] == {"train": 30, "valid": 10, "test": 10}
    assert "not the standard 4100/2264/2307" in ds.info["note"] and "1 - the file's bits" in ds.info["scaling"]
    grey = load_dataset("caltech101", binarize="none", root=str(tmp_path))
    assert torch.equal(grey.train.x, ds.train.x)  # already bits: the binarization changes nothing


CALTECH_DAMAGE = {
    "no val_data": (dict(drop="val_data"), "has no variable 'val_data'", "classnames, test_data"),
    "no test_labels": (dict(drop="test_labels"), "has no variable 'test_labels'"),
    "783 columns": (dict(train_data=np.zeros((30, 783))), "'train_data'", "has shape (30, 783), expected (N, 784)"),
    "grey value": (dict(test_data=np.full((10, 784), 0.5)), "'test_data'", "holds the value 0.5, expected 0 or 1"),
    "label count": (dict(val_labels=np.ones((9, 1))), "'val_labels'", "has shape (9, 1), expected (10, 1)"),
    "label 0": (dict(train_labels=np.zeros((30, 1))), "'train_labels'", "outside the classes 1..101"),
    "label 102": (dict(train_labels=np.full((30, 1), 102)), "outside the classes 1..101"),
}


@pytest.mark.parametrize("case", list(CALTECH_DAMAGE))
def test_caltech101_damaged_file(tmp_path, case):
    kwargs, *fragments = CALTECH_DAMAGE[case]
    path = tmp_path / caltech101.FILE  # right in the root: found there too
    _write_caltech(path, **kwargs)
    with pytest.raises(DataError) as err:
        load_dataset("caltech101", root=str(tmp_path))
    _one_line(err, *fragments, str(path.resolve()), caltech101.URL)


def test_caltech101_missing_and_foreign(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    with pytest.raises(DataError) as err:
        load_dataset("caltech101")
    _one_line(err, f"place {caltech101.FILE} in the folder {(tmp_path / 'Caltech101Silhouettes').resolve()}",
              caltech101.URL, "--data-root / $ZOO_DATA")
    path = tmp_path / "Caltech101Silhouettes" / caltech101.FILE
    path.parent.mkdir()
    path.write_text("<html>404 Not Found</html>")  # what a failed download may leave
    with pytest.raises(DataError) as err:
        load_dataset("caltech101")
    _one_line(err, "cannot read", "as a MATLAB file", caltech101.URL)


# ------------------------------------------------------------------------------------------ what is missing, where

def test_missing_files_says_what_to_place_without_loading(tmp_path):
    """zoo reproduce lists the cells whose data are absent: one line per data set, nothing read or downloaded."""
    from zoo.data.local_files import missing_files

    root = tmp_path.resolve()
    assert missing_files("binarized-mnist", str(tmp_path)) == (
        f"data set 'binarized-mnist': place binarized_mnist_train.amat, binarized_mnist_valid.amat, "
        f"binarized_mnist_test.amat in the folder {root / 'MNIST_static'} (from {binarized_mnist.URL}"
        f"binarized_mnist_train.amat, {binarized_mnist.URL}binarized_mnist_valid.amat, "
        f"{binarized_mnist.URL}binarized_mnist_test.amat)")
    assert missing_files("omniglot", str(tmp_path)) == (
        f"data set 'omniglot': place chardata.mat in the folder {root / 'OMNIGLOT'} (from {omniglot.URL})")
    assert missing_files("caltech101", str(tmp_path)) == (
        f"data set 'caltech101': place {caltech101.FILE} in the folder {root / 'Caltech101Silhouettes'} (from "
        f"{caltech101.URL})")
    assert "place frey_rawface.mat in the folder" in missing_files("frey", str(tmp_path))
    assert f"in the folder {root / 'FashionMNIST' / 'raw'}" in missing_files("fashion-mnist", str(tmp_path))
    assert missing_files("mnist5k", str(tmp_path)) is None  # embedded: nothing to place
    _write_amat(tmp_path / "MNIST_static")
    (tmp_path / "MNIST_static" / "binarized_mnist_valid.amat").unlink()
    assert missing_files("binarized-mnist", str(tmp_path)) == (
        f"data set 'binarized-mnist': place binarized_mnist_valid.amat in the folder {root / 'MNIST_static'} (from "
        f"{binarized_mnist.URL}binarized_mnist_valid.amat)")
    _write_amat(tmp_path / "MNIST_static")
    (tmp_path / "OMNIGLOT").mkdir()
    (tmp_path / "chardata.mat").write_bytes(b"")  # right in the root counts too (its content is the loader's business)
    assert missing_files("binarized-mnist", str(tmp_path)) is None and missing_files("omniglot", str(tmp_path)) is None


# ----------------------------------------------------------------------------------------------------- provenance

def test_torchvision_sets_record_file_checksums(tmp_path):
    """mnist / fashion-mnist reading is tested in test_data.py (IDX files written there); here: their SHA-256."""
    import struct

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, shape in (("train-images-idx3-ubyte", (12, 28, 28)), ("train-labels-idx1-ubyte", (12,)),
                        ("t10k-images-idx3-ubyte", (4, 28, 28)), ("t10k-labels-idx1-ubyte", (4,))):
        arr = rng.integers(0, 10, shape, dtype=np.uint8)
        header = struct.pack(">I", 0x0800 + arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
        (raw / name).write_bytes(header + arr.tobytes())
    ds = load_dataset("mnist", binarize="none", root=str(tmp_path))
    assert ds.info["files"] == {f: hashlib.sha256((raw / f).read_bytes()).hexdigest()
                                for f in torchvision_sets.RAW_FILES}


def test_eval_json_provenance(tmp_path, capsys):
    """A tiny run on binarized-mnist files written here: eval.json names the data's checksums, the code and the machine;
    changing one bit of the test file changes the checksums and says the files differ from the training ones."""
    import pyro
    import platform

    from zoo.cli.main import main
    from zoo.cli.runs import evaluate_run
    from zoo.provenance import cpu_name, git_state

    data_root = tmp_path / "data"
    _write_amat(data_root / "MNIST_static")
    out = str(tmp_path / "run")
    assert main(["train", "--data", "binarized-mnist", "--data-root", str(data_root), "--out", out, "--device", "cpu",
                 "--epochs", "1", "--batch-size", "10", "--latent-dim", "2", "--hidden", "8", "--no-progress"]) == 0

    def evaluate():
        evaluate_run(out, num_samples=2, device="cpu", progress=False, quality_samples=0)

    evaluate()
    first = json.load(open(os.path.join(out, "eval.json")))["provenance"]
    assert set(first) == {"data", "zoo_version", "git_commit", "git_dirty", "torch", "pyro", "python", "device",
                          "cpu"}
    test_file = data_root / "MNIST_static" / "binarized_mnist_test.amat"
    data = first["data"]
    assert data["name"] == "binarized-mnist" and data["binarize"] == "static"
    assert data["files"]["binarized_mnist_test.amat"] == hashlib.sha256(test_file.read_bytes()).hexdigest()
    assert len(data["sha256"]) == 64 and data["same_files_as_training"] is True
    assert first["zoo_version"] == "0.1.0" and first["device"] == "cpu"
    assert first["torch"] == torch.__version__ and first["pyro"] == pyro.__version__
    assert first["python"] == platform.python_version() and first["cpu"] == cpu_name()
    assert first["git_commit"] == git_state()["commit"]  # this checkout's commit (None outside a checkout)

    text = test_file.read_text()
    test_file.write_text(text.replace("0", "1", 1))  # one pixel of the first test image
    evaluate()
    second = json.load(open(os.path.join(out, "eval.json")))["provenance"]["data"]
    assert second["files"]["binarized_mnist_test.amat"] != data["files"]["binarized_mnist_test.amat"]
    assert second["files"]["binarized_mnist_train.amat"] == data["files"]["binarized_mnist_train.amat"]
    assert second["sha256"] != data["sha256"] and second["same_files_as_training"] is False
    capsys.readouterr()


def test_git_state_outside_a_checkout_and_without_git(tmp_path, monkeypatch):
    from zoo import provenance

    assert provenance.git_state(str(tmp_path)) == {"commit": None, "dirty": None}
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable at all
    assert provenance.git_state() == {"commit": None, "dirty": None}


def test_tensor_digest_is_cached_and_sensitive(tmp_path):
    from zoo.provenance import tensor_digest

    _write_amat(tmp_path)
    ds = load_dataset("binarized-mnist", root=str(tmp_path))
    digest = tensor_digest(ds)
    assert ds._provenance_sha256 == digest and tensor_digest(ds) == digest
    assert tensor_digest(load_dataset("binarized-mnist", root=str(tmp_path))) == digest  # same data, same digest
    changed = load_dataset("binarized-mnist", root=str(tmp_path))
    changed.valid.x[0, 0] = 1 - changed.valid.x[0, 0]
    assert tensor_digest(changed) != digest
