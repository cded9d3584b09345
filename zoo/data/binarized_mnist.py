"""``binarized-mnist``: MNIST with Larochelle's fixed binarization (Larochelle & Murray 2011), the "static MNIST" of
the IWAE (Burda et al. 2016), VampPrior (Tomczak & Welling 2018) and Sylvester-flow (van den Berg et al. 2018) tables.

Source: ``binarized_mnist_train.amat``, ``binarized_mnist_valid.amat`` and ``binarized_mnist_test.amat`` from
http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/ -- plain text, one image per line, 784 values 0
or 1 separated by spaces, the 28x28 image in row-major order (the papers' code reads each line with ``line.split()``
and reshapes C-order). 50000/10000/10000 images, no labels; the papers use these splits as they are.

The files are looked for in ``<root>/MNIST_static/`` (the folder of the VampPrior and Sylvester code), then
``<root>/BinaryMNIST/`` (the IWAE code's), then ``<root>/``; missing, they are downloaded into ``<root>/MNIST_static/``
only when the host is reachable, and otherwise a :class:`~zoo.errors.DataError` names what to place where.

Verification: a file of the published byte size must have the published SHA-256 (TensorFlow Datasets'
``url_checksums/binarized_mnist.txt``: the same URLs), else it is refused as damaged or another binarization; a file of
another size (a subset, other line endings) is read, checked line by line (784 values of 0/1) and marked as not the
published file in the data set's info. Every file's SHA-256 is recorded in ``info["files"]`` (eval.json's provenance).

The values are already bits: every binarization policy leaves them as they are (the default, ``static``, names it).
"""
from pathlib import Path

import numpy as np
import torch

from zoo.data import local_files
from zoo.data.base import DATASETS, Split, finalize
from zoo.errors import DataError

NAME = "binarized-mnist"
URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
FILES = {"train": "binarized_mnist_train.amat", "valid": "binarized_mnist_valid.amat",
         "test": "binarized_mnist_test.amat"}
SUBDIRS = ("MNIST_static", "BinaryMNIST")
PIXELS = 784
STANDARD = {"train": 50000, "valid": 10000, "test": 10000}
# (bytes, SHA-256) of Larochelle's files, as TensorFlow Datasets records them for the same URLs
PUBLISHED = {
    "train": (78400000, "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d"),
    "valid": (15680000, "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2"),
    "test": (15680000, "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c"),
}


def _fixed_layout(raw: bytes):
    """The digits of a file laid out as Larochelle's (every line: 784 one-character values, single spaces, "\\n"),
    as uint8 (N, 784) minus '0', read without a Python loop; None for any other layout."""
    width = 2 * PIXELS  # 784 values, 783 spaces, one newline
    if not raw or len(raw) % width:
        return None
    chars = np.frombuffer(raw, dtype=np.uint8).reshape(-1, width)
    if not ((chars[:, 1:-1:2] == ord(" ")).all() and (chars[:, -1] == ord("\n")).all()):
        return None
    return chars[:, 0::2] - ord("0")


def read_amat(path: Path, split: str):
    """The images of one ``.amat`` file as uint8 (N, 784) of 0/1, its SHA-256, and whether it is the published
    file."""
    url = URL + FILES[split]
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"data set {NAME!r}: cannot read {path.resolve()} ({e.strerror}); replace it with {url}") \
            from None
    digest = local_files.sha256_bytes(raw)
    size, published_sha = PUBLISHED[split]
    if len(raw) == size and digest != published_sha:
        raise DataError(f"data set {NAME!r}: {path.resolve()} has the size of Larochelle's file but not its SHA-256 "
                        f"({digest[:16]}..., expected {published_sha[:16]}...): it is damaged or another "
                        f"binarization; replace it with {url}")
    bits = _fixed_layout(raw)
    if bits is not None:
        wrong = bits > 1
        if not wrong.any():
            return bits, digest, digest == published_sha
    lines = raw.split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()  # the newline that ends the last line
    if not lines:
        raise DataError(f"data set {NAME!r}: {path.resolve()} holds no images; replace it with {url}")
    rows = []
    for i, line in enumerate(lines):
        values = line.split()
        if len(values) != PIXELS:
            raise DataError(f"data set {NAME!r}: line {i + 1} of {path.resolve()} has {len(values)} values, expected "
                            f"{PIXELS} (a truncated or damaged file); replace it with {url}")
        joined = b"".join(values)
        if len(joined) != PIXELS:  # a value longer than one character: "0.5", "10", ...
            bad = next(v for v in values if len(v) != 1)
            raise DataError(f"data set {NAME!r}: line {i + 1} of {path.resolve()} holds the value "
                            f"{bad.decode('latin-1')!r}, expected 0 or 1; replace the file with {url}")
        rows.append(joined)
    bits = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), PIXELS) - ord("0")
    wrong = bits > 1  # uint8: characters below '0' wrap around
    if wrong.any():
        r, c = np.argwhere(wrong)[0]
        raise DataError(f"data set {NAME!r}: line {r + 1} of {path.resolve()} holds the value "
                        f"{chr(bits[r, c] + ord('0'))!r}, expected 0 or 1; replace the file with {url}")
    return bits, digest, digest == published_sha


@DATASETS.register(
    NAME, paper="Larochelle & Murray 2011; as in Burda et al. 2016, Tomczak & Welling 2018, van den Berg et al. 2018",
    needs_files=True,
    summary="static binarized MNIST 50k/10k/10k from <root>/MNIST_static/binarized_mnist_{train,valid,test}.amat "
            "(Larochelle's files, SHA-256 checked); default binarize: static (the file's bits)",
)
def binarized_mnist(binarize=None, seed=0, root=None):
    """Larochelle's fixed binarization of MNIST, 50000/10000/10000 as published; no labels."""
    root = local_files.data_root(root)
    folder = local_files.fetch_missing(NAME, root, SUBDIRS, {f: URL + f for f in FILES.values()})
    splits, files, published = {}, {}, []
    for split, file in FILES.items():
        bits, digest, is_published = read_amat(folder / file, split)
        splits[split] = Split(torch.from_numpy(bits.astype(np.float32)))
        files[file] = digest
        published.append(is_published)
    sizes = {s: len(splits[s]) for s in FILES}
    info = {"source": f"Larochelle's binarized MNIST (.amat) from {folder.resolve()}",
            "split": f"{sizes['train']}/{sizes['valid']}/{sizes['test']} train/valid/test as published",
            "sizes": sizes, "files": files,
            "checksum": ("SHA-256 of every file matches the published one" if all(published) else
                         "not the published files (SHA-256 differs; sizes and values checked)")}
    if sizes != STANDARD:
        info["note"] = (f"{sizes['train']}/{sizes['valid']}/{sizes['test']} images, not the standard "
                        f"{STANDARD['train']}/{STANDARD['valid']}/{STANDARD['test']}")
    return finalize(NAME, splits["train"], splits["valid"], splits["test"],
                    binarize="static" if binarize is None else binarize, seed=seed, image_shape=(1, 28, 28),
                    info=info)
