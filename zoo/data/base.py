"""The data-set contract: three in-memory splits plus what a model needs to know about them.

Data sets are registered by name with :data:`DATASETS` and built by :func:`load_dataset`. Every split holds a float32
tensor ``x`` of shape (N, D) (images flattened row-major; ``image_shape`` says how to fold them back) and optionally
int64 labels ``y`` of shape (N,). Pixel data are scaled to [0, 1]. Binarization is a property of the data set:

* ``dynamic`` -- every training epoch draws x_bin ~ Bernoulli(x) afresh (Burda et al. 2016); the valid/test splits are
  binarized once with a fixed seed so that evaluations are comparable;
* ``static``  -- every split is binarized once, seeded;
* ``none``    -- the grey levels are kept (Gaussian / discretized likelihoods).

Sequence data sets (:mod:`zoo.data.sequences`) hold x of shape (N, T, D) flattened row-major to (N, T*D) like images,
say so with ``sequence_shape = (T, D)``, and give each split's per-point ``lengths`` (int64 (N,), 1..T). The steps of a
point beyond its length are NaN in x, so every mini-batch row carries its own mask (``zoo.sequences.step_mask``)
through training, evaluation and sampling whatever indexes it; binarization leaves NaN padding as it is.

Multimodal data sets (:mod:`zoo.data.multimodal`) hold M named modalities per point, each flattened and concatenated in
order into x (N, D1 + ... + DM); ``modalities`` lists them (:class:`zoo.multimodal.Modality`: name, dimension, image
shape or None, kind) and so gives the split points. A modality missing from a point is NaN over its whole slice, so the
availability mask travels with every mini-batch row like the sequences' padding (``zoo.multimodal.presence``).
"""
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from zoo.errors import ConfigError
from zoo.registry import Registry

DATASETS = Registry("data set")
BINARIZATIONS = ("dynamic", "static", "none")


@dataclass
class Split:
    x: torch.Tensor
    y: Optional[torch.Tensor] = None
    lengths: Optional[torch.Tensor] = None  # sequences: steps per point, int64 (N,); the steps beyond are NaN in x

    def __len__(self):
        return self.x.shape[0]

    def to(self, device):
        return Split(self.x.to(device), None if self.y is None else self.y.to(device),
                     None if self.lengths is None else self.lengths.to(device))


@dataclass
class Dataset:
    name: str
    train: Split
    valid: Split
    test: Split
    binarize: str = "none"
    image_shape: Optional[Tuple[int, int, int]] = None  # (C, H, W) when the data are images
    num_classes: Optional[int] = None
    seed: int = 0
    info: dict = field(default_factory=dict)  # provenance shown in reports (source, split sizes, ...)
    sequence_shape: Optional[Tuple[int, int]] = None  # (T, D) when each point is a sequence of T steps of D values
    modalities: Optional[tuple] = None  # multimodal data: zoo.multimodal.Modality per slice of x, in order

    @property
    def dim(self) -> int:
        return self.train.x.shape[1]

    @property
    def is_binary(self) -> bool:
        """True when every value the model will see is in {0, 1}."""
        x = self.train.x
        return self.binarize != "none" or bool(((x == 0) | (x == 1) | torch.isnan(x)).all())  # NaN: padding

    def to(self, device):
        return Dataset(self.name, self.train.to(device), self.valid.to(device), self.test.to(device), self.binarize,
                       self.image_shape, self.num_classes, self.seed, dict(self.info), self.sequence_shape,
                       self.modalities)

    def train_epoch_x(self, epoch: int) -> torch.Tensor:
        """The training inputs the model sees in ``epoch``: dynamic binarization is redrawn per epoch, on the data's
        device, from a generator seeded by (seed, epoch) so that a resumed run sees the same bits."""
        if self.binarize != "dynamic":
            return self.train.x
        gen = torch.Generator(device=self.train.x.device).manual_seed(_mix(self.seed, 1 + epoch))
        if self.sequence_shape is not None or self.modalities is not None:  # NaN padding / missing modality stays
            return _keep_padding(self.train.x, torch.bernoulli(self.train.x.nan_to_num(0.0), generator=gen))
        return torch.bernoulli(self.train.x, generator=gen)


def _mix(seed: int, stream: int) -> int:
    return (seed * 1_000_003 + stream * 7_919) % (2**63 - 1)


def binarize_fixed(x: torch.Tensor, seed: int, stream: int) -> torch.Tensor:
    """One seeded Bernoulli draw of grey levels in [0, 1] (static binarization, and the fixed valid/test draw)."""
    gen = torch.Generator(device=x.device).manual_seed(_mix(seed, 10_000 + stream))
    return _keep_padding(x, torch.bernoulli(x.nan_to_num(0.0), generator=gen))


def _keep_padding(x: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
    """``drawn`` with NaN where x is NaN (the padding of sequences)."""
    return torch.where(torch.isnan(x), x, drawn)


SPLIT_SEED = 12345  # the zoo's fixed split seed: every run of every model sees the same train/valid/test points


def split_of(x, y, idx) -> Split:
    """The rows ``idx`` of numpy arrays x (and labels y, or None) as a :class:`Split` of tensors."""
    return Split(torch.tensor(x[idx]), None if y is None else torch.tensor(y[idx]))


def fixed_split(n: int, n_valid: int, n_test: int, labels: Optional[Sequence[int]] = None,
                seed: int = SPLIT_SEED) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted (train, valid, test) index arrays of a seeded split of ``n`` points that ignores the run seed.

    With ``labels`` the split is class-stratified: each class is spread evenly over a random order (systematic
    sampling), so every split holds each class in proportion to within one point."""
    if n_valid < 0 or n_test < 0 or n_valid + n_test >= n:
        raise ValueError(f"cannot split {n} points into valid={n_valid}, test={n_test} and a non-empty train")
    rng = np.random.Generator(np.random.PCG64(seed))
    if labels is None:
        order = rng.permutation(n)
    else:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != n:
            raise ValueError(f"{labels.shape[0]} labels for {n} points")
        key = np.empty(n)
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            rank = rng.permutation(members.size)
            key[members] = (rank + rng.random()) / members.size
        order = np.lexsort((rng.random(n), key))  # random tie-break between classes of equal size
    test, valid, train = order[:n_test], order[n_test:n_test + n_valid], order[n_test + n_valid:]
    return np.sort(train), np.sort(valid), np.sort(test)


def finalize(name, train, valid, test, binarize, seed, image_shape=None, num_classes=None, info=None,
             sequence_shape=None, modalities=None) -> Dataset:
    """Apply the binarization policy to grey-level splits in [0, 1] and return the :class:`Dataset`."""
    if binarize not in BINARIZATIONS:
        raise ConfigError(f"--binarize must be one of {', '.join(BINARIZATIONS)}, got {binarize!r}")
    if binarize != "none":
        for split in (train, valid, test):
            v = split.x.nan_to_num(0.5)  # sequences' NaN padding is no value
            if v.numel() and (v.min() < 0 or v.max() > 1):
                raise ConfigError(f"data set {name!r}: binarization needs values in [0, 1]; "
                                  f"found [{v.min():.3g}, {v.max():.3g}]")
        valid = Split(binarize_fixed(valid.x, seed, 1), valid.y, valid.lengths)
        test = Split(binarize_fixed(test.x, seed, 2), test.y, test.lengths)
        if binarize == "static":
            train = Split(binarize_fixed(train.x, seed, 0), train.y, train.lengths)
    return Dataset(name, train, valid, test, binarize, image_shape, num_classes, seed, dict(info or {}),
                   None if sequence_shape is None else tuple(sequence_shape),
                   None if modalities is None else tuple(modalities))


def load_dataset(spec: str, binarize: Optional[str] = None, seed: int = 0, root: Optional[str] = None) -> Dataset:
    """Build a registered data set, or a user's ``.npz`` file when ``spec`` ends in ``.npz``.

    ``binarize=None`` takes the data set's own default (``dynamic`` for MNIST-like pixels)."""
    from zoo.data import npz_file  # noqa: F401  (registers the loaders)

    if spec.endswith(".npz"):
        return npz_file.load_npz(spec, binarize=binarize or "none", seed=seed)
    entry, arg = DATASETS.lookup(spec)
    if entry.source == "registered":
        return DATASETS.build(spec, binarize=binarize, seed=seed, root=root)
    return _user_dataset(entry, arg, binarize, seed, root)


def _user_dataset(entry, arg, binarize, seed, root) -> Dataset:
    """A user's data function (``my_data.py:load``): called with whichever of binarize, seed, root it names; it
    returns a :class:`Dataset`, or arrays in the ``.npz`` layouts (``{"x": X, "y": Y}`` or ``x_train``/``x_test``...)."""
    import inspect

    from zoo.data.npz_file import dataset_from_arrays
    from zoo.errors import DataError

    fn = entry.factory
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    given = {"binarize": binarize, "seed": seed, "root": root}
    kwargs = {k: v for k, v in given.items() if k in params}
    result = fn(*([] if arg is None else [arg]), **kwargs) if callable(fn) else fn
    if isinstance(result, Dataset):
        return result
    if isinstance(result, dict):
        return dataset_from_arrays(result, entry.name, binarize or "none", seed, source=f"function {entry.name}")
    raise DataError(f"data set {entry.name} returned a {type(result).__name__}; return a zoo.data.Dataset or a dict "
                    f"of arrays like an .npz file ({{'x': X, 'y': Y}} or x_train/x_valid/x_test)")
