"""``digits``: scikit-learn's 8x8 handwritten digits (1797 images, grey levels 0..16).

Source: the UCI "Optical Recognition of Handwritten Digits" data (Alpaydin & Kaynak 1998), shipped as
``sklearn.datasets.load_digits``. The zoo scales the grey levels to [0, 1] (divide by 16) and splits 80/10/10 %
train/valid/test, class-stratified, with the fixed seed :data:`~zoo.data.base.SPLIT_SEED`; the run seed drives only the
binarization. Small and fast: handy for smoke tests and CPU runs.
"""
from functools import lru_cache

import numpy as np

from zoo.data.base import DATASETS, SPLIT_SEED, finalize, fixed_split, split_of

VALID_FRACTION = TEST_FRACTION = 0.1


def _csv_path() -> str:
    """The file ``sklearn.datasets.load_digits`` reads (``sklearn/datasets/data/digits.csv.gz``: 1797 rows of 64 grey
    levels and the label), found without importing scikit-learn (4 s of imports for every ``zoo`` process)."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        from zoo.errors import DataError

        raise DataError("data set digits is read from scikit-learn's package data: pip install scikit-learn")
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", "digits.csv.gz")


@lru_cache(maxsize=1)
def _raw():
    import os

    path = _csv_path()
    if os.path.exists(path):
        table = np.loadtxt(path, delimiter=",")  # what load_digits does: 64 pixels, then the label
        data, target = table[:, :-1], table[:, -1]
    else:  # another layout of scikit-learn's package data
        from sklearn.datasets import load_digits

        bunch = load_digits()
        data, target = bunch.data, bunch.target
    x = (np.asarray(data, dtype=np.float64) / 16.0).astype(np.float32)
    y = np.asarray(target, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


@DATASETS.register(
    "digits",
    paper="Alpaydin & Kaynak 1998 (UCI optical digits), via scikit-learn load_digits",
    summary="scikit-learn 8x8 digits (1797), split 80/10/10 % (fixed, stratified); default binarize: dynamic",
)
def digits(binarize=None, seed=0, root=None):
    """scikit-learn's 1797 8x8 digits scaled to [0, 1], split 80/10/10 % with a fixed seed."""
    x, y = _raw()
    n = len(x)
    n_valid, n_test = round(VALID_FRACTION * n), round(TEST_FRACTION * n)
    train, valid, test = fixed_split(n, n_valid, n_test, labels=y)
    return finalize(
        "digits", split_of(x, y, train), split_of(x, y, valid), split_of(x, y, test),
        binarize="dynamic" if binarize is None else binarize, seed=seed, image_shape=(1, 8, 8), num_classes=10,
        info={"source": "sklearn.datasets.load_digits (UCI optical digits, Alpaydin & Kaynak 1998)",
              "split": f"{len(train)}/{len(valid)}/{len(test)} train/valid/test, class-stratified, "
                       f"fixed seed {SPLIT_SEED}",
              "sizes": {"train": len(train), "valid": len(valid), "test": len(test)},
              "scaling": "grey levels 0..16 divided by 16"},
    )
