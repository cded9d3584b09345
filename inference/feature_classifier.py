"""The zoo's feature classifier: the stand-in for Inception-v3 in the sample-quality metrics
(:mod:`inference.sample_metrics`), since no Inception weights can be downloaded.

A small network is trained by the zoo on the data set's own training split with its labels: a convolutional net for
images (conv 5x5 8 -> max-pool 2 -> conv 5x5 16 -> max-pool 2 -> linear 64 -> linear C, ReLU between), an MLP
(128 -> 64 -> C) for vectors. It is seeded, trained with Adam for :data:`EPOCHS` epochs (more on small
data sets: at least :data:`MIN_STEPS` steps), on a CPU with one intra-op thread (as fast for batches of 64 images
of a net this small, and it never spins against other processes on a shared machine), and the weights of the
epoch with the best validation accuracy are kept; their test accuracy is recorded (how much its features and
predictions can be trusted). The *features* are the 64 activations of the penultimate layer, divided by one
constant fixed at training time so that the training points' features have mean square 1 per unit (the scale the
kernel (x.y/d + 1)^3 of the KID is made for); the *predictions* p(y|x) are its softmax probabilities.

Inputs: the classifier sees the images the model is trained on. For a run on binarized data (``dynamic`` or
``static``) the real test images are {0, 1} draws and the model's samples are draws x ~ p(x), so a classifier of grey
levels would judge binary images it never saw (and binary samples would look unlike grey test digits to it); such a
classifier is trained on binarized images (a fresh Bernoulli draw of the grey training images every epoch, the
validation and test images binarized once, seeded) and cached apart from the grey-level one. Both binarizations share
one classifier: their images come from the same Bernoulli draw of the grey levels.

Cached on disk by (data set, binary or grey inputs, :data:`VERSION`, seed, a fingerprint of the training and
validation data) in ``$ZOO_CACHE_DIR/classifiers/`` (default ``~/.cache/pyro-zoo/classifiers/``), written atomically
(:func:`inference.checkpoint.save_atomic`) and read with ``weights_only=True``; a cache file that cannot be read or
does not match is retrained, with a note, never a crash. A folder that cannot be written leaves the classifier
uncached, with a note.
"""
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import torch
from torch import nn

from zoo.errors import DataError

VERSION = 1
FORMAT = "zoo-feature-classifier-1"
NAME = "zoo-classifier"
DEFAULT_SEED = 0
EPOCHS = 6
MIN_STEPS = 360
BATCH_SIZE = 64
LR = 2e-3
FEATURE_DIM = 64
ARCH_CONV = "conv 5x5x8, max-pool 2, conv 5x5x16, max-pool 2, linear 64, linear C (ReLU)"
ARCH_MLP = "MLP 128, 64, C (ReLU)"
_BINARIZE_STREAM = 7_777  # separates the classifier's binarization draws from every other use of its seed


class NoLabels(DataError):
    """The data set has no labels, so no classifier can be trained for the sample-quality metrics."""


def cache_dir() -> str:
    """``$ZOO_CACHE_DIR/classifiers``, or ``~/.cache/pyro-zoo/classifiers`` (``$XDG_CACHE_HOME`` respected)."""
    root = os.environ.get("ZOO_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "pyro-zoo")
    return os.path.join(root, "classifiers")


def _conv_ok(image_shape) -> bool:
    return image_shape is not None and len(image_shape) == 3 and min(image_shape[1:]) >= 4


class ClassifierNet(nn.Module):
    """x (B, D) -> (features (B, 64), logits (B, C)); a conv net when ``image_shape`` (C, H, W) has H, W >= 4."""

    def __init__(self, dim: int, num_classes: int, image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__()
        self.image_shape = tuple(image_shape) if _conv_ok(image_shape) else None
        if self.image_shape is not None:
            c, h, w = self.image_shape
            h2, w2 = (-(-(-(-n // 2)) // 2) for n in (h, w))  # ceil(ceil(n / 2) / 2): two ceil-mode poolings
            self.body = nn.Sequential(
                nn.Conv2d(c, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
                nn.Conv2d(8, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(),
                nn.Linear(16 * h2 * w2, FEATURE_DIM), nn.ReLU())
        else:
            self.body = nn.Sequential(nn.Linear(dim, 128), nn.ReLU(), nn.Linear(128, FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, x):
        if self.image_shape is not None:
            x = x.reshape(-1, *self.image_shape)
        h = self.body(x)
        return h, self.head(h)


@dataclass
class FeatureClassifier:
    """A trained classifier and what eval.json records of it (:attr:`info`)."""

    net: ClassifierNet
    feature_scale: float
    info: dict
    notes: List[str] = field(default_factory=list)

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = 1000):
        """(features (N, 64), probabilities (N, C)) of the rows of x, on x's device."""
        self.net.to(x.device).eval()
        feats, probs = [], []
        for start in range(0, x.shape[0], batch_size):
            h, logits = self.net(x[start:start + batch_size].float())
            feats.append(h / self.feature_scale)
            probs.append(torch.softmax(logits.double(), -1))
        return torch.cat(feats), torch.cat(probs)


def _labelled(split, name: str, what: str):
    if split.y is None:
        raise NoLabels(f"data set {name!r} has no labels, so the zoo's feature classifier cannot be trained on it; "
                       "the sample-quality metrics need one")
    keep = split.y >= 0  # semi-supervised runs mark hidden labels with -1
    if not bool(keep.any()):
        raise NoLabels(f"data set {name!r} has no labels in its {what} split; the sample-quality metrics need them")
    return split.x[keep], split.y[keep]


def fingerprint(data) -> str:
    """A hash of the training and validation inputs and labels (the classifier is a function of them)."""
    h = hashlib.sha256()
    for split in (data.train, data.valid):
        h.update(split.x.detach().float().cpu().contiguous().numpy().tobytes())
        if split.y is not None:
            h.update(split.y.detach().long().cpu().contiguous().numpy().tobytes())
    h.update(repr(tuple(data.image_shape or ())).encode())
    return h.hexdigest()


def cache_file(name: str, binarized: bool, seed: int, fp: str, folder: Optional[str] = None) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(str(name)))[:60] or "data"
    return os.path.join(folder or cache_dir(),
                        f"{slug}-{'binary' if binarized else 'grey'}-v{VERSION}-seed{seed}-{fp[:16]}.pt")


def _binarize(x: torch.Tensor, seed: int, stream: int) -> torch.Tensor:
    gen = torch.Generator(device=x.device).manual_seed((seed * 1_000_003 + _BINARIZE_STREAM * 7_919 + stream)
                                                       % (2 ** 63 - 1))
    return torch.bernoulli(x.clamp(0, 1), generator=gen)


def _accuracy(net, x, y, batch_size=1000) -> Tuple[float, float]:
    net.eval()
    correct = x.new_zeros((), dtype=torch.float64)
    loss = x.new_zeros((), dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            _, logits = net(x[start:start + batch_size])
            yb = y[start:start + batch_size]
            correct += (logits.argmax(-1) == yb).sum()
            loss += nn.functional.cross_entropy(logits, yb, reduction="sum").double()
    return float(correct / x.shape[0]), float(loss / x.shape[0])


def train_classifier(data, name: str, binarized: bool, seed: int = DEFAULT_SEED, device=None,
                     epochs: Optional[int] = None) -> FeatureClassifier:
    """Train the classifier on ``data`` (a :class:`zoo.data.Dataset` of grey levels with labels); keep the weights of
    the best validation epoch (accuracy, then loss). Seeded; the global RNG is left as it was."""
    device = torch.device(device or data.train.x.device)
    x_tr, y_tr = (t.to(device) for t in _labelled(data.train, name, "training"))
    x_va, y_va = (t.to(device) for t in _labelled(data.valid, name, "validation"))
    x_te, y_te = (t.to(device) for t in _labelled(data.test, name, "test"))
    num_classes = int(max(int(y_tr.max()), int(y_va.max()), int(y_te.max())) + 1)
    if num_classes < 2:
        raise NoLabels(f"data set {name!r} has a single class, so a classifier's features say nothing")
    if binarized:
        x_va, x_te = _binarize(x_va, seed, 1), _binarize(x_te, seed, 2)
    if epochs is None:
        epochs = max(EPOCHS, -(-MIN_STEPS // -(-x_tr.shape[0] // BATCH_SIZE)))
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        net, scale, best_key, best_epoch, history = _fit(data, x_tr, y_tr, x_va, y_va, num_classes, binarized, seed,
                                                         device, epochs)
    finally:
        torch.set_num_threads(threads)
    test_acc, _ = _accuracy(net, x_te, y_te)
    seconds = time.perf_counter() - t0
    info = {"name": NAME, "version": VERSION, "seed": seed, "data": name,
            "inputs": "binarized images" if binarized else "grey levels",
            "architecture": ARCH_CONV if net.image_shape else ARCH_MLP,
            "num_classes": num_classes, "feature_dim": FEATURE_DIM, "train_points": int(x_tr.shape[0]),
            "epochs": epochs, "best_epoch": best_epoch, "valid_accuracy": best_key[0], "valid_accuracy_per_epoch":
            history, "test_accuracy": test_acc, "test_points": int(x_te.shape[0]), "train_seconds": seconds,
            "device": str(device)}
    return FeatureClassifier(net, scale, info)


def _fit(data, x_tr, y_tr, x_va, y_va, num_classes, binarized, seed, device, epochs):
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        net = ClassifierNet(data.dim, num_classes, data.image_shape).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        gen = torch.Generator().manual_seed(seed)
        best, best_key, history = None, None, []
        for epoch in range(epochs):
            x_epoch = _binarize(x_tr, seed, 10 + epoch) if binarized else x_tr
            net.train()
            order = torch.randperm(x_tr.shape[0], generator=gen).to(device)
            for start in range(0, x_tr.shape[0], BATCH_SIZE):
                idx = order[start:start + BATCH_SIZE]
                _, logits = net(x_epoch[idx])
                loss = nn.functional.cross_entropy(logits, y_tr[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            acc, vloss = _accuracy(net, x_va, y_va)
            history.append(acc)
            if best_key is None or (acc, -vloss) > best_key:
                best_key, best_epoch = (acc, -vloss), epoch
                best = {k: v.detach().clone() for k, v in net.state_dict().items()}
        net.load_state_dict(best)
        net.eval()
        x_fit = _binarize(x_tr, seed, 3) if binarized else x_tr
        with torch.no_grad():
            feats = torch.cat([net(x_fit[s:s + 1000])[0] for s in range(0, x_fit.shape[0], 1000)])
        scale = float(feats.double().square().mean().sqrt().clamp_min(1e-12))
    return net, scale, best_key, best_epoch, history


def _save(clf: FeatureClassifier, path: str, fp: str, image_shape, dim: int):
    from inference.checkpoint import save_atomic

    save_atomic({"format": FORMAT, "version": VERSION, "fingerprint": fp, "state": clf.net.state_dict(),
                 "feature_scale": clf.feature_scale, "dim": dim,
                 "image_shape": list(image_shape) if image_shape else None, "info": clf.info}, path)


def _load(path: str, fp: str, seed: int, dim: int, image_shape, device) -> FeatureClassifier:
    """The cached classifier at ``path``; ValueError saying why it cannot be used."""
    import math

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is retrained
        from inference.checkpoint import _why_unreadable

        raise ValueError(_why_unreadable(path, e)) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("version") != VERSION:
        raise ValueError("it is not a zoo feature classifier of this version")
    info = obj.get("info")
    if obj.get("fingerprint") != fp or not isinstance(info, dict) or info.get("seed") != seed:
        raise ValueError("it was trained on other data or with another seed")
    shape = obj.get("image_shape")
    if obj.get("dim") != dim or (tuple(shape) if shape else None) != (tuple(image_shape) if image_shape else None):
        raise ValueError("it was made for data of another shape")
    scale, acc = obj.get("feature_scale"), info.get("test_accuracy")
    if not all(isinstance(v, float) and math.isfinite(v) for v in (scale, acc)) or scale <= 0:
        raise ValueError("its recorded feature scale or accuracy is damaged")
    try:
        net = ClassifierNet(dim, int(info["num_classes"]), image_shape)
        state = obj["state"]
        if not all(torch.is_tensor(v) and bool(torch.isfinite(v).all()) for v in state.values()):
            raise ValueError("its weights are not finite")
        net.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError, AttributeError) as e:
        raise ValueError(f"its weights do not fit the classifier ({type(e).__name__})") from None
    return FeatureClassifier(net.to(device).eval(), scale, dict(info))


def _stamp(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


#: classifiers loaded or trained in this process, by cache file (a report of many runs reads the file once)
_MEMORY = {}


def get_classifier(data, name: str, binarized: bool, seed: int = DEFAULT_SEED, device=None,
                   folder: Optional[str] = None, on_train: Optional[Callable[[], None]] = None) -> FeatureClassifier:
    """The classifier for ``data`` (grey levels with labels; :class:`NoLabels` without), from the cache when a valid
    file is there, else trained and cached. ``info`` says where it came from (``cached``: True/False, ``file``);
    ``notes`` say what went wrong with the cache (a damaged file retrained, a folder that cannot be written).
    ``on_train()`` is called before a classifier is trained (a progress line)."""
    device = torch.device(device or data.train.x.device)
    _labelled(data.train, name, "training")
    fp = fingerprint(data)
    path = cache_file(name, binarized, seed, fp, folder)
    key = (os.path.abspath(path), str(device), _stamp(path))
    if key in _MEMORY:  # the same file, unchanged since this process read or wrote it
        clf = _MEMORY[key]
        return FeatureClassifier(clf.net, clf.feature_scale, dict(clf.info, cached=True))
    notes = []
    if os.path.exists(path):
        try:
            clf = _load(path, fp, seed, data.dim, data.image_shape, device)
            clf.info.update(cached=True, file=path)
            _MEMORY[(key[0], key[1], _stamp(path))] = clf
            return clf
        except ValueError as e:
            notes.append(f"the cached feature classifier {path} could not be used ({e}); it was trained again")
    if on_train is not None:
        on_train()
    clf = train_classifier(data, name, binarized, seed, device)
    clf.info.update(cached=False, file=path)
    from inference.atomic_write import WriteError

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _save(clf, path, fp, data.image_shape, data.dim)
        _MEMORY[(key[0], key[1], _stamp(path))] = clf
    except (OSError, WriteError) as e:  # a read-only or full disk: the evaluation goes on without the cache
        why = e.strerror or str(e) if isinstance(e, OSError) else str(e)
        notes.append(f"the feature classifier could not be cached in {os.path.dirname(path)} ({why}); it will be "
                     "trained again next time (set ZOO_CACHE_DIR to a writable folder)")
        clf.info["file"] = None
    clf.notes = notes
    return clf
