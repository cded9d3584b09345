"""``frey``: the Frey faces, 1965 grey-level 28x20 images of Brendan Frey's face (video frames).

Source: the file ``frey_rawface.mat`` distributed by Sam Roweis (https://cs.nyu.edu/~roweis/data.html), a MATLAB file
whose variable ``ff`` is a uint8 array of shape (560, 1965): one column per image, 560 = 28 rows x 20 columns (the
column is the image in row-major order, i.e. MATLAB's ``reshape(ff(:, i), 20, 28)'``). A benchmark of the VampPrior
(Tomczak & Welling 2018) and Sylvester-flow (van den Berg et al. 2018) papers, reported in bits/dim.

The file is read from the data root (``root``, default ``$ZOO_DATA`` or ``./data``), as ``<root>/frey_rawface.mat``
or ``<root>/frey/frey_rawface.mat``; when it is missing it is downloaded only if the host is reachable, and otherwise a
:class:`~zoo.errors.DataError` names the file and the folder to place it in (the conventions of
:mod:`zoo.data.torchvision_sets`).

Split: 1565/200/200 train/valid/test as in the papers' code, chosen with the zoo's fixed split seed (the papers shuffle
with the run seed); a file with another number of images is split in the same proportions (at least one each).
Grey levels are divided by 255, so the values lie on the k/255 grid (the ``discretized-logistic`` likelihood's);
binarization defaults to ``none``.
"""
import os
import urllib.request
from pathlib import Path

import numpy as np
import torch

from zoo.data import torchvision_sets
from zoo.data.base import DATASETS, SPLIT_SEED, Split, finalize, fixed_split
from zoo.data.local_files import sha256_file
from zoo.errors import DataError

FILE = "frey_rawface.mat"
URL = "https://cs.nyu.edu/~roweis/data/frey_rawface.mat"
HEIGHT, WIDTH = 28, 20
STANDARD_N, N_VALID, N_TEST = 1965, 200, 200


def candidates(root: Path):
    return [root / FILE, root / "frey" / FILE]


def _download(target: Path):
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(URL, timeout=60) as response, open(tmp, "wb") as out:
            out.write(response.read())
        os.replace(tmp, target)
    except Exception as e:  # URLError, HTTPError, OSError, timeouts
        tmp.unlink(missing_ok=True)
        raise DataError(f"data set 'frey': download of {URL} failed ({' '.join(str(e).split())[:200]}); place "
                        f"{FILE} in the folder {target.parent.resolve()}") from None


def find_file(root: Path) -> Path:
    """The local ``frey_rawface.mat``, downloading it when it is missing and the host is reachable."""
    for path in candidates(root):
        if path.is_file():
            return path
    target = candidates(root)[0]
    if not torchvision_sets.network_available("cs.nyu.edu"):
        raise DataError(f"data set 'frey' is not on disk and there is no network to download it: place {FILE} "
                        f"(from {URL}) in the folder {root.resolve()}, or point root / $ZOO_DATA at a folder "
                        f"holding it")
    _download(target)
    return target


def read_faces(path: Path) -> np.ndarray:
    """The images of ``path`` as uint8 (N, 28, 20)."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except Exception as e:  # a truncated or foreign file
        raise DataError(f"data set 'frey': cannot read {path.resolve()} as a MATLAB file ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:150]}); replace it with an intact copy of {URL}") from None
    ff = mat.get("ff")
    if ff is None:
        keys = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise DataError(f"data set 'frey': {path.resolve()} has no variable 'ff' (found: {keys}); replace it with "
                        f"{URL}")
    ff = np.asarray(ff)
    if ff.ndim != 2 or ff.shape[0] != HEIGHT * WIDTH or ff.shape[1] < 3:
        raise DataError(f"data set 'frey': 'ff' in {path.resolve()} has shape {ff.shape}, expected "
                        f"({HEIGHT * WIDTH}, N >= 3) (one 28x20 image per column; the original is (560, 1965))")
    if ff.dtype != np.uint8:
        if not np.issubdtype(ff.dtype, np.number) or ff.min() < 0 or ff.max() > 255 or np.any(ff != np.round(ff)):
            raise DataError(f"data set 'frey': 'ff' in {path.resolve()} holds {ff.dtype} values outside the 8-bit "
                            f"levels 0..255; replace it with {URL}")
        ff = ff.astype(np.uint8)
    return np.ascontiguousarray(ff.T).reshape(-1, HEIGHT, WIDTH)


@DATASETS.register(
    "frey", paper="Frey faces (B. Frey; file of S. Roweis), as in Tomczak & Welling 2018, van den Berg et al. 2018",
    needs_files=True,
    summary="Frey faces, 1965 grey 28x20 images from <root>/frey_rawface.mat (1565/200/200 split); "
            "default binarize: none",
)
def frey(binarize=None, seed=0, root=None):
    """The Frey faces from ``frey_rawface.mat``, scaled by 1/255, split 1565/200/200 with a fixed seed."""
    root = Path(os.path.expanduser(str(root if root is not None else torchvision_sets.default_root())))
    path = find_file(root)
    faces = read_faces(path)
    n = faces.shape[0]
    if n == STANDARD_N:
        n_valid, n_test = N_VALID, N_TEST
    else:
        n_valid = n_test = max(1, round(n * N_VALID / STANDARD_N))
    x = torch.from_numpy(faces.reshape(n, -1).astype(np.float32) / 255.0)
    train, valid, test = fixed_split(n, n_valid, n_test)
    info = {"source": f"frey_rawface.mat ('ff', {HEIGHT * WIDTH} x {n} uint8) from {path.resolve()}",
            "split": f"{len(train)}/{len(valid)}/{len(test)} train/valid/test, fixed seed {SPLIT_SEED}",
            "sizes": {"train": len(train), "valid": len(valid), "test": len(test)},
            "scaling": "grey levels 0..255 divided by 255", "files": {FILE: sha256_file(path)}}
    if n != STANDARD_N:
        info["note"] = f"{n} images, not the standard {STANDARD_N}"
    return finalize("frey", Split(x[train].clone()), Split(x[valid].clone()), Split(x[test].clone()),
                    binarize="none" if binarize is None else binarize, seed=seed, image_shape=(1, HEIGHT, WIDTH),
                    info=info)
