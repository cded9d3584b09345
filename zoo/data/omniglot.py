"""``omniglot``: the 28x28 Omniglot characters of Burda, Grosse & Salakhutdinov (2016), as in the IWAE, VampPrior
(Tomczak & Welling 2018) and Sylvester-flow (van den Berg et al. 2018) tables.

Source: ``chardata.mat`` of the IWAE code (https://github.com/yburda/iwae/raw/master/datasets/OMNIGLOT/chardata.mat),
a MATLAB file holding ``data`` (784 x 24345) and ``testdata`` (784 x 8070): one image per column, grey levels in
[0, 1], each column the 28x28 image in MATLAB's column-major order; and ``target`` / ``testtarget`` (50 x N), the
one-hot alphabet of each image (50 alphabets). The papers' code reads it as
``data.T.reshape(-1, 28, 28).reshape(-1, 784, order='F')`` (IWAE ``datasets.py``, VampPrior and Sylvester
``utils/load_data.py``) and plots the rows as row-major 28x28 images; the zoo's rows are the same vectors.

Split: the test set is ``testdata``. The validation set is the papers' carve-out of 1345 training images, chosen as the
IWAE code does (``numpy.random.RandomState(123).permutation(24345)``, its last 1345 indices; the VampPrior code shuffles
with the run's seed instead); the rest is the training set (23000), kept in file order. A file with another number of
training images gives up the same share (at least one). Labels: the alphabet, 0..49.

The file is looked for in ``<root>/OMNIGLOT/`` (the papers' folder), then ``<root>/``; missing, it is downloaded into
``<root>/OMNIGLOT/`` only when github.com is reachable, and otherwise a :class:`~zoo.errors.DataError` names what to
place where. There is no published checksum: the shapes, the value range and the one-hot labels are verified, and the
file's SHA-256 is recorded in ``info["files"]`` (eval.json's provenance). Binarization defaults to ``dynamic``, as in
the papers.
"""
import numpy as np
import torch

from zoo.data import local_files
from zoo.data.base import DATASETS, Split, finalize
from zoo.errors import DataError

NAME = "omniglot"
FILE = "chardata.mat"
URL = "https://github.com/yburda/iwae/raw/master/datasets/OMNIGLOT/chardata.mat"
SUBDIRS = ("OMNIGLOT",)
SIDE = 28
STANDARD_TRAIN, STANDARD_TEST, N_VALID = 24345, 8070, 1345
SPLIT_SEED = 123  # the IWAE code's shuffle seed


def _images(mat, key, path):
    x = local_files.mat_variable(NAME, mat, key, path, URL)
    if x.ndim != 2 or x.shape[0] != SIDE * SIDE or x.shape[1] < 1:
        raise DataError(f"data set {NAME!r}: {key!r} in {path.resolve()} has shape {x.shape}, expected "
                        f"({SIDE * SIDE}, N) (one 28x28 image per column; the original is (784, "
                        f"{STANDARD_TRAIN if key == 'data' else STANDARD_TEST})); replace the file with {URL}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise DataError(f"data set {NAME!r}: {key!r} in {path.resolve()} holds NaN or infinite values; replace the "
                        f"file with {URL}")
    if x.min() < 0 or x.max() > 1:
        raise DataError(f"data set {NAME!r}: {key!r} in {path.resolve()} holds values outside [0, 1] (found "
                        f"[{x.min():.3g}, {x.max():.3g}]); replace the file with {URL}")
    return local_files.column_major_images(np.ascontiguousarray(x.T), SIDE, SIDE).astype(np.float32)


def _labels(mat, key, n, path, classes=None):
    t = local_files.mat_variable(NAME, mat, key, path, URL)
    if t.ndim != 2 or t.shape[1] != n or (classes is not None and t.shape[0] != classes):
        want = f"({classes if classes is not None else 'C'}, {n})"
        raise DataError(f"data set {NAME!r}: {key!r} in {path.resolve()} has shape {t.shape}, expected {want} (one "
                        f"one-hot alphabet column per image); replace the file with {URL}")
    if not (((t == 0) | (t == 1)).all() and (t.sum(axis=0) == 1).all()):
        raise DataError(f"data set {NAME!r}: {key!r} in {path.resolve()} is not one-hot (each column must hold a "
                        f"single 1); replace the file with {URL}")
    return np.argmax(t, axis=0).astype(np.int64), t.shape[0]


def validation_indices(n: int) -> np.ndarray:
    """The papers' validation carve-out of ``n`` training images: the IWAE code's RandomState(123) permutation, its
    last 1345 (a file of another size: the same share, at least one), sorted."""
    n_valid = N_VALID if n == STANDARD_TRAIN else max(1, round(n * N_VALID / STANDARD_TRAIN))
    if n - n_valid < 1:
        raise DataError(f"data set {NAME!r}: only {n} training images; need at least 2 to carve out a validation set")
    return np.sort(np.random.RandomState(SPLIT_SEED).permutation(n)[-n_valid:])


@DATASETS.register(
    NAME, paper="Lake et al. 2015; 28x28 file of Burda et al. 2016, as in Tomczak & Welling 2018, van den Berg et al. "
                "2018", needs_files=True,
    summary="Omniglot 28x28 from <root>/OMNIGLOT/chardata.mat (IWAE's file): 23000/1345/8070 (IWAE's validation "
            "carve-out), 50 alphabet labels; default binarize: dynamic",
)
def omniglot(binarize=None, seed=0, root=None):
    """Burda et al.'s 28x28 Omniglot, split 23000/1345/8070 as the IWAE code; binarized dynamically by default."""
    root = local_files.data_root(root)
    path = local_files.fetch_missing(NAME, root, SUBDIRS, {FILE: URL}) / FILE
    digest = local_files.sha256_file(path)
    mat = local_files.read_mat(NAME, path, URL)
    x_train, x_test = _images(mat, "data", path), _images(mat, "testdata", path)
    y_train, classes = _labels(mat, "target", x_train.shape[0], path)
    y_test, _ = _labels(mat, "testtarget", x_test.shape[0], path, classes)
    valid = validation_indices(x_train.shape[0])
    train = np.setdiff1d(np.arange(x_train.shape[0]), valid)
    sizes = {"train": len(train), "valid": len(valid), "test": x_test.shape[0]}
    info = {"source": f"chardata.mat (Burda et al.'s 28x28 Omniglot) from {path.resolve()}",
            "split": f"{sizes['train']}/{sizes['valid']}/{sizes['test']} train/valid/test: valid = the IWAE code's "
                     f"carve-out (RandomState({SPLIT_SEED}) permutation, last {len(valid)}), test = testdata",
            "sizes": sizes, "files": {FILE: digest},
            "checksum": "no published SHA-256; shapes, values and labels checked",
            "labels": f"alphabet (0..{classes - 1}) from the one-hot target / testtarget"}
    if (x_train.shape[0], x_test.shape[0]) != (STANDARD_TRAIN, STANDARD_TEST):
        info["note"] = (f"{x_train.shape[0]}/{x_test.shape[0]} training/test images, not the standard "
                        f"{STANDARD_TRAIN}/{STANDARD_TEST}")
    return finalize(NAME, Split(torch.from_numpy(x_train[train]), torch.from_numpy(y_train[train])),
                    Split(torch.from_numpy(x_train[valid]), torch.from_numpy(y_train[valid])),
                    Split(torch.from_numpy(x_test), torch.from_numpy(y_test)),
                    binarize="dynamic" if binarize is None else binarize, seed=seed, image_shape=(1, SIDE, SIDE),
                    num_classes=classes, info=info)
