"""Sequence data sets: x of shape (N, T, D), stored flattened to (N, T*D) like images, with per-point lengths.

The contract (:mod:`zoo.data.base`): ``Dataset.sequence_shape = (T, D)``; each split's ``lengths`` (int64 (N,), 1..T);
the steps of a point beyond its length are NaN in x (the padding), which is what the models' masks read
(:func:`zoo.sequences.step_mask`), so padding is never scored.

* ``mnist5k-rows`` -- each mnist5k digit read top to bottom as 28 steps of 28 pixels (the split, labels and
  binarization are mnist5k's, so a sequence model and a VAE on the flattened digits see the same bits);
* ``lgssm-synthetic`` -- 2000/200/200 sequences of T = 20 steps of D = 2 values from a linear-Gaussian state-space
  model with a 2-dimensional state and known parameters (:data:`LGSSM_PARAMETERS`), drawn with a fixed seed; the
  Kalman filter gives its exact likelihood (:mod:`zoo.kalman`);
* a user's ``.npz`` with ``x`` of shape (N, T, D) and ``lengths`` (:mod:`zoo.data.npz_file`).
"""
import math
from functools import lru_cache
from typing import Optional

import numpy as np
import torch

from zoo.data.base import DATASETS, SPLIT_SEED, Dataset, Split, finalize
from zoo.errors import ConfigError, DataError


def sequence_split(x: torch.Tensor, lengths: Optional[torch.Tensor] = None, y=None, where: str = "the data") -> Split:
    """A :class:`Split` of sequences x (N, T, D): flattened to (N, T*D), NaN beyond each length (all T by default)."""
    if x.dim() != 3:
        raise DataError(f"{where}: sequences have shape (N, T, D), got {tuple(x.shape)}")
    n, T, _ = x.shape
    x = x.to(torch.float32)
    if lengths is None:
        lengths = torch.full((n,), T, dtype=torch.int64)
    lengths = torch.as_tensor(lengths)
    check_lengths(lengths, n, T, where)
    lengths = lengths.to(torch.int64)
    valid = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # (N, T)
    inside = x[valid]
    if not bool(torch.isfinite(inside).all()):
        raise DataError(f"{where}: {int((~torch.isfinite(inside)).sum())} NaN/inf value(s) inside the sequences' "
                        f"lengths; remove or impute them")
    x = torch.where(valid.unsqueeze(-1), x, torch.full((), float("nan")))
    return Split(x.reshape(n, -1).contiguous(), y, lengths)


def check_lengths(lengths, n: int, T: int, where: str = "the data"):
    """One :class:`DataError` line for a lengths array that does not describe n sequences of at most T steps."""
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.shape[0] != n:
        raise DataError(f"{where}: 'lengths' has shape {tuple(lengths.shape)} for {n} sequences; give one length "
                        f"per sequence, shape ({n},)")
    if lengths.is_floating_point() and not bool((lengths == lengths.round()).all()):
        raise DataError(f"{where}: 'lengths' holds non-integer values; give whole numbers of steps")
    if n and int(lengths.min()) < 1:
        raise DataError(f"{where}: {int((lengths < 1).sum())} sequence(s) have length {int(lengths.min())}; every "
                        f"sequence needs at least one step")
    if n and int(lengths.max()) > T:
        raise DataError(f"{where}: 'lengths' reaches {int(lengths.max())}, but the sequences have {T} steps; a length "
                        f"counts steps of x (at most T = {T})")


def sequence_info(splits, T: int, D: int) -> dict:
    lengths = torch.cat([s.lengths for s in splits]).double()
    return {"sequence_shape": [T, D], "lengths": {"min": int(lengths.min()), "max": int(lengths.max()),
                                                  "mean": float(lengths.mean())}}


@DATASETS.register(
    "mnist5k-rows",
    paper="LeCun et al. 1998 (MNIST); rows as steps: Chung et al. 2015 style sequential MNIST",
    summary="each mnist5k digit as a sequence of 28 rows of 28 pixels (T=28, D=28); mnist5k's split, labels and "
            "binarization (default: dynamic); the default data of the sequence models",
)
def mnist5k_rows(binarize=None, seed=0, root=None):
    """mnist5k read row by row: 28 steps of 28 pixels, every sequence of length 28."""
    from zoo.data.mnist5k import mnist5k

    flat = mnist5k(binarize=binarize, seed=seed, root=root)
    full = lambda s: Split(s.x, s.y, torch.full((len(s),), 28, dtype=torch.int64))  # noqa: E731
    info = dict(flat.info, **sequence_info([full(flat.train)], 28, 28))
    info["source"] = flat.info["source"] + "; each digit's rows as 28 steps of 28 pixels"
    return Dataset("mnist5k-rows", full(flat.train), full(flat.valid), full(flat.test), flat.binarize,
                   flat.image_shape, flat.num_classes, flat.seed, info, (28, 28))


#: the generating parameters of ``lgssm-synthetic`` (variances as vectors: diagonal covariances)
LGSSM_PARAMETERS = {
    "A": [[0.95 * math.cos(0.3), -0.95 * math.sin(0.3)], [0.95 * math.sin(0.3), 0.95 * math.cos(0.3)]],
    "C": [[1.0, 0.5], [-0.3, 0.8]],
    "b": [0.0, 0.0],
    "q0": [1.0, 1.0],
    "q": [0.1, 0.1],
    "r": [0.2, 0.2],
}
LGSSM_SIZES = (2000, 200, 200)
LGSSM_STEPS = 20


def lgssm_parameters(dtype=torch.float64) -> dict:
    return {k: torch.tensor(v, dtype=dtype) for k, v in LGSSM_PARAMETERS.items()}


def simulate_lgssm(n: int, T: int, generator: torch.Generator, params: Optional[dict] = None) -> torch.Tensor:
    """n sequences (n, T, D) from the linear-Gaussian state-space model with ``params`` (default the data set's)."""
    p = params or lgssm_parameters()
    k = p["A"].shape[0]
    z = p["q0"].sqrt() * torch.randn(n, k, generator=generator, dtype=torch.float64)
    xs = []
    for t in range(T):
        if t:
            z = z @ p["A"].T + p["q"].sqrt() * torch.randn(n, k, generator=generator, dtype=torch.float64)
        loc = z @ p["C"].T + p["b"]
        xs.append(loc + p["r"].sqrt() * torch.randn(loc.shape, generator=generator, dtype=torch.float64))
    return torch.stack(xs, dim=1)


@lru_cache(maxsize=1)
def _lgssm_sequences():
    x = simulate_lgssm(sum(LGSSM_SIZES), LGSSM_STEPS, torch.Generator().manual_seed(SPLIT_SEED)).float()
    x.requires_grad_(False)
    return x


@DATASETS.register(
    "lgssm-synthetic",
    paper="Kalman 1960 (exact likelihood by the Kalman filter)",
    summary="2000/200/200 sequences, T=20, D=2, from a linear-Gaussian state-space model with a 2-D state and known "
            "parameters (fixed seed); exact log p(x) by the Kalman filter",
)
def lgssm_synthetic(binarize=None, seed=0, root=None):
    """Sequences of a known linear-Gaussian state-space model (zoo.data.sequences.LGSSM_PARAMETERS)."""
    if binarize not in (None, "none"):
        raise ConfigError(f"data set 'lgssm-synthetic' holds real values; it cannot be binarized (got --binarize "
                          f"{binarize}); drop --binarize")
    x = _lgssm_sequences()
    a, b = LGSSM_SIZES[0], LGSSM_SIZES[0] + LGSSM_SIZES[1]
    splits = [sequence_split(part.clone(), where="lgssm-synthetic") for part in (x[:a], x[a:b], x[b:])]
    info = {"source": f"simulated linear-Gaussian state-space model, seed {SPLIT_SEED} "
                      f"(zoo.data.sequences.LGSSM_PARAMETERS)",
            "split": f"{a}/{LGSSM_SIZES[1]}/{LGSSM_SIZES[2]} train/valid/test (independent draws)",
            "sizes": dict(zip(("train", "valid", "test"), LGSSM_SIZES)), **sequence_info(splits, LGSSM_STEPS, 2)}
    return finalize("lgssm-synthetic", *splits, binarize="none", seed=seed, info=info,
                    sequence_shape=(LGSSM_STEPS, 2))


def dataset_from_sequences(x: np.ndarray, lengths, y, name: str, path: str, binarize: str, seed: int,
                           source: str) -> Dataset:
    """A user's sequences x (N, T, D) with lengths (N,) (or None: all T) and labels y (or None), split 80/10/10 %
    with the fixed seed, as a sequence :class:`Dataset`."""
    from zoo.data.base import fixed_split
    from zoo.data.npz_file import MIN_POINTS, TEST_FRACTION, VALID_FRACTION, _stratify

    n, T, D = x.shape
    if T == 0 or D == 0:
        raise DataError(f"{path}: 'x' has shape {x.shape}: sequences with no steps or no values per step")
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.dtype.kind not in "biuf":
            raise DataError(f"{path}: 'lengths' has non-numeric dtype {lengths.dtype}; store integer lengths")
        check_lengths(torch.from_numpy(lengths.astype(np.float64)), n, T, path)
        lengths = lengths.astype(np.int64)
    if n < MIN_POINTS:
        raise DataError(f"{path}: 'x' holds {n} sequences; need at least {MIN_POINTS} (one per split)")
    idx = fixed_split(n, max(1, round(VALID_FRACTION * n)), max(1, round(TEST_FRACTION * n)), labels=_stratify(y))
    xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
    splits = [sequence_split(xt[i], None if lengths is None else torch.from_numpy(lengths[i]),
                             None if y is None else torch.from_numpy(y[i]), where=path) for i in idx]
    info = {"source": source, "split": f"split 80/10/10 % by the zoo, fixed seed {SPLIT_SEED}",
            "sizes": {k: len(s) for k, s in zip(("train", "valid", "test"), splits)}, **sequence_info(splits, T, D)}
    num_classes = int(y.max()) + 1 if y is not None and len(y) else None
    return finalize(name, *splits, binarize=binarize, seed=seed, num_classes=num_classes, info=info,
                    sequence_shape=(T, D))
