"""``mnist`` and ``fashion-mnist``: the full benchmarks, read through torchvision from a local copy.

Sources: MNIST (LeCun, Bottou, Bengio & Haffner 1998) and Fashion-MNIST (Xiao, Rasul & Vollgraf 2017), both 60000
training and 10000 test 28x28 grey-level images in the IDX format. The files live where torchvision looks for them:
``<root>/MNIST/raw/`` and ``<root>/FashionMNIST/raw/`` holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (plain, or gzipped with a ``.gz`` suffix: the zoo unpacks
those in place, since torchvision reads only the plain files). ``root`` defaults to ``$ZOO_DATA`` or ``./data``. Missing
files are downloaded only when a network is reachable; offline, a :class:`~zoo.errors.DataError` names what to place
where.

Split: the papers' 50k/10k convention -- the last sixth of the training images (the last 10000 of 60000) is the
validation set, the 10000 test images are the test set. Grey levels are scaled to [0, 1]; binarization defaults to
``dynamic`` for both (pass ``none`` to keep the grey levels).
"""
import gzip
import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from zoo.data.base import DATASETS, Split, finalize
from zoo.errors import DataError

RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
LEGACY_FILES = ("training.pt", "test.pt")  # torchvision < 0.9 cache in <root>/<Class>/processed/


def default_root() -> str:
    """Where the data sets live unless ``root`` is given: ``$ZOO_DATA`` or ``./data``."""
    return os.environ.get("ZOO_DATA") or "data"


def network_available(host: str, port: int = 443, timeout: float = 2.0) -> bool:
    """True when a TCP connection to ``host`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _gunzip_missing(raw: Path):
    """Unpack ``<file>.gz`` next to itself where the plain ``<file>`` that torchvision reads is missing."""
    for name in RAW_FILES:
        plain, packed = raw / name, raw / (name + ".gz")
        if plain.is_file() or not packed.is_file():
            continue
        tmp = raw / (name + ".part")
        try:
            with gzip.open(packed, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, plain)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            tmp.unlink(missing_ok=True)
            raise DataError(f"cannot unpack {packed} ({e}); replace it with an intact copy or place the unpacked "
                            f"{plain}") from None


def _missing(cls, root: Path):
    raw, processed = root / cls.__name__ / "raw", root / cls.__name__ / "processed"
    if all((processed / f).is_file() for f in LEGACY_FILES):
        return []
    return [f for f in RAW_FILES if not (raw / f).is_file()]


def _ensure_files(cls, name: str, root: Path):
    """Make the raw files torchvision reads exist under ``root``, downloading only when a network is reachable."""
    raw = root / cls.__name__ / "raw"
    _gunzip_missing(raw)
    missing = _missing(cls, root)
    if not missing:
        return
    mirror = cls.mirrors[0]
    place = (f"place {', '.join(f + '(.gz)' for f in missing)} in the folder {raw.resolve()} "
             f"(from {mirror}), or point root / $ZOO_DATA at a folder holding {cls.__name__}/raw/")
    if not network_available(urlparse(mirror).hostname or "localhost"):
        raise DataError(f"data set {name!r} is not on disk and there is no network to download it: {place}")
    try:
        cls(str(root), train=True, download=True)
    except Exception as e:  # torchvision raises RuntimeError / URLError / OSError with multi-line messages
        reason = " ".join(str(e).split())[:200]
        raise DataError(f"data set {name!r}: download failed ({reason}); {place}") from None


def _read(cls, name: str, root: Path, train: bool):
    try:
        tv = cls(str(root), train=train, download=False)
    except Exception as e:  # a truncated or foreign file trips torchvision's asserts / dtype checks
        files = ", ".join(str((root / cls.__name__ / "raw" / f).resolve()) for f in RAW_FILES)
        raise DataError(f"data set {name!r}: cannot read the IDX files ({type(e).__name__}: {e}); "
                        f"replace them with intact copies: {files}") from None
    x, y = tv.data, tv.targets
    split = "training" if train else "test"
    if x.dim() != 3 or tuple(x.shape[1:]) != (28, 28) or x.dtype != torch.uint8:
        raise DataError(f"data set {name!r}: the {split} images are {tuple(x.shape)} {x.dtype}, expected (N, 28, 28) "
                        f"uint8; replace the files in {(root / cls.__name__ / 'raw').resolve()}")
    if y.shape != (x.shape[0],) or (y.numel() and (y.min() < 0 or y.max() > 9)):
        raise DataError(f"data set {name!r}: {y.numel()} {split} labels (range must be 0..9) for {x.shape[0]} images; "
                        f"replace the label file in {(root / cls.__name__ / 'raw').resolve()}")
    return x.reshape(x.shape[0], -1).float().div_(255.0), y.long()


def _file_digests(cls, root: Path) -> dict:
    """SHA-256 of the files torchvision read (the raw IDX files, or the legacy processed ones), for provenance."""
    from zoo.data.local_files import sha256_file

    raw = root / cls.__name__ / "raw"
    if all((raw / f).is_file() for f in RAW_FILES):
        return {f: sha256_file(raw / f) for f in RAW_FILES}
    processed = root / cls.__name__ / "processed"
    return {f: sha256_file(processed / f) for f in LEGACY_FILES if (processed / f).is_file()}


def _load(cls, name, binarize, seed, root, standard=(60000, 10000)):
    root = Path(os.path.expanduser(str(root if root is not None else default_root())))
    _ensure_files(cls, name, root)
    x_tr, y_tr = _read(cls, name, root, train=True)
    x_te, y_te = _read(cls, name, root, train=False)
    n_valid = x_tr.shape[0] // 6  # 10000 of 60000
    if x_tr.shape[0] - n_valid < 1 or x_te.shape[0] < 1:
        raise DataError(f"data set {name!r}: only {x_tr.shape[0]} training / {x_te.shape[0]} test images in "
                        f"{(root / cls.__name__ / 'raw').resolve()}; need at least 2 / 1")
    n_train = x_tr.shape[0] - n_valid
    info = {"source": f"torchvision.datasets.{cls.__name__} from {(root / cls.__name__).resolve()}",
            "split": f"{n_train}/{n_valid}/{x_te.shape[0]} train/valid/test: valid = last {n_valid} training images",
            "sizes": {"train": n_train, "valid": n_valid, "test": x_te.shape[0]},
            "scaling": "grey levels 0..255 divided by 255", "files": _file_digests(cls, root)}
    if (x_tr.shape[0], x_te.shape[0]) != standard:
        info["note"] = (f"{x_tr.shape[0]}/{x_te.shape[0]} training/test images, not the standard "
                        f"{standard[0]}/{standard[1]}")
    return finalize(name, Split(x_tr[:n_train].clone(), y_tr[:n_train].clone()),
                    Split(x_tr[n_train:].clone(), y_tr[n_train:].clone()), Split(x_te, y_te),
                    binarize="dynamic" if binarize is None else binarize, seed=seed, image_shape=(1, 28, 28),
                    num_classes=10, info=info)


@DATASETS.register(
    "mnist", paper="LeCun et al. 1998", needs_files=True,
    summary="MNIST 60k/10k via torchvision from <root>/MNIST/raw (50k/10k/10k split); default binarize: dynamic",
)
def mnist(binarize=None, seed=0, root=None):
    """The full MNIST digits (torchvision), split 50000/10000/10000; binarized dynamically by default."""
    from torchvision.datasets import MNIST

    return _load(MNIST, "mnist", binarize, seed, root)


@DATASETS.register(
    "fashion-mnist", paper="Xiao, Rasul & Vollgraf 2017", needs_files=True,
    summary="Fashion-MNIST 60k/10k via torchvision from <root>/FashionMNIST/raw (50k/10k/10k split); "
            "default binarize: dynamic (--binarize none keeps grey levels)",
)
def fashion_mnist(binarize=None, seed=0, root=None):
    """Zalando's Fashion-MNIST clothing images (torchvision), split 50000/10000/10000; dynamic binarization."""
    from torchvision.datasets import FashionMNIST

    return _load(FashionMNIST, "fashion-mnist", binarize, seed, root)
