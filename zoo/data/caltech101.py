"""``caltech101``: the Caltech101 Silhouettes at 28x28 (Marlin et al. 2010), as in the VampPrior (Tomczak & Welling
2018) and Sylvester-flow (van den Berg et al. 2018) tables.

Source: ``caltech101_silhouettes_28_split1.mat`` (https://people.cs.umass.edu/~marlin/data/), a MATLAB file holding
``train_data`` (4100 x 784), ``val_data`` (2264 x 784) and ``test_data`` (2307 x 784) of 0/1 values, one image per row
in MATLAB's column-major order, and ``train_labels`` / ``val_labels`` / ``test_labels`` (N x 1), the class 1..101. The
papers' code (VampPrior and Sylvester ``utils/load_data.py``) reads each split as
``1 - data.reshape(-1, 28, 28).reshape(-1, 784, order='F')``: the column-major images as row-major rows, and the bits
flipped. The zoo does the same, so its bits are the papers' bits; the published splits are kept as they are, in file
order. Labels become 0..100.

The file is looked for in ``<root>/Caltech101Silhouettes/`` (the papers' folder), then ``<root>/``; missing, it is
downloaded into ``<root>/Caltech101Silhouettes/`` only when the host is reachable, and otherwise a
:class:`~zoo.errors.DataError` names what to place where. There is no published checksum: the shapes, the 0/1 values
and the labels are verified, and the file's SHA-256 is recorded in ``info["files"]`` (eval.json's provenance).
Binarization defaults to ``static``, which leaves the bits as they are (the papers use no dynamic binarization here).
"""
import numpy as np
import torch

from zoo.data import local_files
from zoo.data.base import DATASETS, Split, finalize
from zoo.errors import DataError

NAME = "caltech101"
FILE = "caltech101_silhouettes_28_split1.mat"
URL = "https://people.cs.umass.edu/~marlin/data/caltech101_silhouettes_28_split1.mat"
SUBDIRS = ("Caltech101Silhouettes",)
SIDE = 28
CLASSES = 101
SPLITS = {"train": ("train_data", "train_labels"), "valid": ("val_data", "val_labels"),
          "test": ("test_data", "test_labels")}
STANDARD = {"train": 4100, "valid": 2264, "test": 2307}


def _split(mat, key, label_key, path):
    x = local_files.mat_variable(NAME, mat, key, path, URL)
    if x.ndim != 2 or x.shape[1] != SIDE * SIDE or x.shape[0] < 1:
        raise DataError(f"data set {NAME!r}: {key!r} in {path.resolve()} has shape {x.shape}, expected "
                        f"(N, {SIDE * SIDE}) (one 28x28 image per row); replace the file with {URL}")
    if not ((x == 0) | (x == 1)).all():
        odd = x[(x != 0) & (x != 1)].flat[0]
        raise DataError(f"data set {NAME!r}: {key!r} in {path.resolve()} holds the value {float(odd):g}, expected 0 or 1; "
                        f"replace the file with {URL}")
    y = local_files.mat_variable(NAME, mat, label_key, path, URL)
    if y.size != x.shape[0] or (y.ndim == 2 and 1 not in y.shape) or y.ndim > 2:
        raise DataError(f"data set {NAME!r}: {label_key!r} in {path.resolve()} has shape {y.shape}, expected "
                        f"({x.shape[0]}, 1) (one class per image of {key!r}); replace the file with {URL}")
    y = y.reshape(-1)
    if not (np.isfinite(y).all() and (y == np.round(y)).all() and y.min() >= 1 and y.max() <= CLASSES):
        raise DataError(f"data set {NAME!r}: {label_key!r} in {path.resolve()} holds values outside the classes "
                        f"1..{CLASSES}; replace the file with {URL}")
    rows = local_files.column_major_images(np.ascontiguousarray(x), SIDE, SIDE)
    return Split(torch.from_numpy((1 - rows).astype(np.float32)), torch.from_numpy(y.astype(np.int64) - 1))


@DATASETS.register(
    NAME, paper="Marlin et al. 2010, as in Tomczak & Welling 2018, van den Berg et al. 2018", needs_files=True,
    summary="Caltech101 Silhouettes 28x28 from <root>/Caltech101Silhouettes/caltech101_silhouettes_28_split1.mat: "
            "4100/2264/2307 as published, 101 classes; default binarize: static (the file's bits)",
)
def caltech101(binarize=None, seed=0, root=None):
    """Marlin's 28x28 Caltech101 Silhouettes, bits flipped as in the papers' code, split 4100/2264/2307 as
    published."""
    root = local_files.data_root(root)
    path = local_files.fetch_missing(NAME, root, SUBDIRS, {FILE: URL}) / FILE
    digest = local_files.sha256_file(path)
    mat = local_files.read_mat(NAME, path, URL)
    splits = {s: _split(mat, key, label_key, path) for s, (key, label_key) in SPLITS.items()}
    sizes = {s: len(splits[s]) for s in SPLITS}
    info = {"source": f"caltech101_silhouettes_28_split1.mat (Marlin's 28x28 silhouettes) from {path.resolve()}",
            "split": f"{sizes['train']}/{sizes['valid']}/{sizes['test']} train/valid/test as published",
            "sizes": sizes, "files": {FILE: digest},
            "checksum": "no published SHA-256; shapes, values and labels checked",
            "scaling": "x = 1 - the file's bits, as the VampPrior and Sylvester code",
            "labels": f"class 0..{CLASSES - 1} (the file's 1..{CLASSES} minus 1)"}
    if sizes != STANDARD:
        info["note"] = (f"{sizes['train']}/{sizes['valid']}/{sizes['test']} images, not the standard "
                        f"{STANDARD['train']}/{STANDARD['valid']}/{STANDARD['test']}")
    return finalize(NAME, splits["train"], splits["valid"], splits["test"],
                    binarize="static" if binarize is None else binarize, seed=seed, image_shape=(1, SIDE, SIDE),
                    num_classes=CLASSES, info=info)
