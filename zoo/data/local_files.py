"""What the file-based loaders share: where the data root is, finding a data set's files in it, their SHA-256, and a
download that happens only when the host is reachable (offline, the caller's :class:`~zoo.errors.DataError` names the
file, the folder and the URL).

A data set's files are looked for in ``<root>/<FOLDER>/`` (the folder name the papers' code uses, e.g. ``OMNIGLOT``)
and then in ``<root>/`` itself; the error message names the first. ``root`` is the ``root`` argument, else
``$ZOO_DATA``, else ``./data`` (:func:`zoo.data.torchvision_sets.default_root`).
"""
import hashlib
import os
import urllib.request
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple
from urllib.parse import urlparse

from zoo.data import torchvision_sets
from zoo.errors import DataError


def data_root(root) -> Path:
    return Path(os.path.expanduser(str(root if root is not None else torchvision_sets.default_root())))


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def folders(root: Path, subdirs: Sequence[str]) -> List[Path]:
    """Where a data set's files may lie, in the order they are tried: each of ``subdirs`` under ``root``, then
    ``root``."""
    return [root / d for d in subdirs] + [root]


def find_folder(root: Path, subdirs: Sequence[str], names: Iterable[str]) -> Optional[Path]:
    """The first candidate folder holding every file of ``names``, or None."""
    names = list(names)
    for folder in folders(root, subdirs):
        if all((folder / n).is_file() for n in names):
            return folder
    return None


def best_folder(root: Path, subdirs: Sequence[str], names: Iterable[str]) -> Tuple[Path, List[str]]:
    """The candidate folder holding the most of ``names`` (the first one, ``<root>/<subdirs[0]>``, when none holds
    any) and the files it lacks."""
    names = list(names)
    found = [(f, [n for n in names if not (f / n).is_file()]) for f in folders(root, subdirs)]
    return min(found, key=lambda pair: len(pair[1]))


def download(name: str, url: str, target: Path, place: str):
    """Fetch ``url`` into ``target`` (through ``<target>.part``, so a broken transfer leaves no file behind)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=120) as response, open(tmp, "wb") as out:
            while True:
                block = response.read(1 << 22)
                if not block:
                    break
                out.write(block)
        os.replace(tmp, target)
    except Exception as e:  # URLError, HTTPError, OSError, timeouts
        tmp.unlink(missing_ok=True)
        raise DataError(f"data set {name!r}: download of {url} failed ({' '.join(str(e).split())[:200]}); "
                        f"{place}") from None


def fetch_missing(name: str, root: Path, subdirs: Sequence[str], urls: dict) -> Path:
    """The folder holding every file of ``urls`` ({file name: URL}). Missing files are downloaded, into the candidate
    folder that holds the most of them, when their host is reachable; otherwise a :class:`DataError` names them, the
    folder to place them in and where the papers' code gets them."""
    folder = find_folder(root, subdirs, urls)
    if folder is not None:
        return folder
    target, missing = best_folder(root, subdirs, urls)
    place = (f"place {', '.join(missing)} in the folder {target.resolve()} (from "
             f"{', '.join(urls[m] for m in missing)}), or point --data-root / $ZOO_DATA at a folder holding "
             f"{subdirs[0]}/")
    hosts = sorted({urlparse(urls[m]).hostname or "localhost" for m in missing})
    if not all(torchvision_sets.network_available(h) for h in hosts):
        raise DataError(f"data set {name!r} is not on disk and there is no network to download it: {place}")
    for m in missing:
        download(name, urls[m], target / m, place)
    return target


def read_mat(name: str, path: Path, url: str) -> dict:
    """The variables of the MATLAB file ``path`` (scipy.io.loadmat); a damaged or foreign file is a one-line
    :class:`DataError` that says to replace it with ``url``."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except Exception as e:  # a truncated file, an HDF5 (v7.3) file, something else entirely
        raise DataError(f"data set {name!r}: cannot read {path.resolve()} as a MATLAB file ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:150]}); replace it with an intact copy of {url}") from None
    return mat


def mat_variable(name: str, mat: dict, key: str, path: Path, url: str):
    """The numeric array ``key`` of a loaded MATLAB file, or a one-line :class:`DataError` naming what is there."""
    import numpy as np

    if key not in mat:
        keys = ", ".join(sorted(k for k in mat if not k.startswith("__"))) or "none"
        raise DataError(f"data set {name!r}: {path.resolve()} has no variable {key!r} (found: {keys}); replace it "
                        f"with {url}")
    value = np.asarray(mat[key])
    if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
        raise DataError(f"data set {name!r}: variable {key!r} of {path.resolve()} holds {value.dtype} values, not "
                        f"numbers; replace the file with {url}")
    return value


def column_major_images(rows, height: int, width: int):
    """Images stored one per row in MATLAB's column-major order (``I(:)``) as row-major rows: pixel (r, c) of row i is
    ``rows[i, r + height * c]``. For 28x28 this is the papers' ``x.reshape(-1, 28, 28).reshape(-1, 784, order='F')``."""
    n = rows.shape[0]
    return rows.reshape(n, width, height).transpose(0, 2, 1).reshape(n, height * width)


def _file_sets(name: str):
    """(folders to search, {file: URL}) of a file-based registered data set, or None."""
    from zoo.data import binarized_mnist, caltech101, omniglot

    if name == binarized_mnist.NAME:
        return binarized_mnist.SUBDIRS, {f: binarized_mnist.URL + f for f in binarized_mnist.FILES.values()}
    if name == omniglot.NAME:
        return omniglot.SUBDIRS, {omniglot.FILE: omniglot.URL}
    if name == caltech101.NAME:
        return caltech101.SUBDIRS, {caltech101.FILE: caltech101.URL}
    return None


def missing_files(name: str, root=None) -> Optional[str]:
    """Without loading or downloading anything: None when the files of the registered data set ``name`` are on disk
    under ``root`` (or it needs none), else one line saying what to place where (``zoo reproduce`` lists such cells)."""
    root = data_root(root)
    if name in ("mnist", "fashion-mnist"):
        folder = "MNIST" if name == "mnist" else "FashionMNIST"
        raw, processed = root / folder / "raw", root / folder / "processed"
        if all((processed / f).is_file() for f in torchvision_sets.LEGACY_FILES):
            return None
        absent = [f for f in torchvision_sets.RAW_FILES
                  if not (raw / f).is_file() and not (raw / (f + ".gz")).is_file()]
        return None if not absent else (f"data set {name!r}: place {', '.join(f + '(.gz)' for f in absent)} in the "
                                        f"folder {raw.resolve()}")
    if name == "frey":
        from zoo.data import frey

        if any(p.is_file() for p in frey.candidates(root)):
            return None
        return f"data set 'frey': place {frey.FILE} in the folder {root.resolve()} (from {frey.URL})"
    sets = _file_sets(name)
    if sets is None:
        return None
    subdirs, urls = sets
    if find_folder(root, subdirs, urls) is not None:
        return None
    target, absent = best_folder(root, subdirs, urls)
    return (f"data set {name!r}: place {', '.join(absent)} in the folder {target.resolve()} (from "
            f"{', '.join(urls[f] for f in absent)})")
