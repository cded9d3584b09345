"""A user's own data set from a NumPy ``.npz`` file (``zoo train ... --data my.npz``).

Two layouts are accepted:

* ``x`` (and optionally labels ``y``): the zoo splits it 80/10/10 % train/valid/test with the fixed seed
  :data:`~zoo.data.base.SPLIT_SEED` (class-stratified when labels are given);
* ``x_train``, ``x_test`` and optionally ``x_valid`` (labels ``y_train``, ``y_valid``, ``y_test`` optional, all or
  none): the user's split; a missing ``x_valid`` is carved from train (10 %, fixed seed).

Inputs may be vectors (N, D) or images (N, H, W) / (N, C, H, W), which are flattened (``image_shape`` remembers the
fold). Sequences: ``x`` of shape (N, T, D) with ``lengths`` (N,) (each 1..T; T for every fixed-length sequence) and
optional ``y``, in the ``x`` layout only: a sequence data set (:mod:`zoo.data.sequences`; steps beyond a length are
padding, never scored). Multimodal: arrays ``modality_<name>`` with optional ``mask_<name>`` and ``y``
(:mod:`zoo.data.multimodal`). Whole-number data in 0..255 with a maximum above 1 (``uint8`` pixels, or the same values stored as int or
float) are treated as 8-bit grey levels and divided by 255; binary 0/1 data are kept as
they are. Every problem with the file is a :class:`~zoo.errors.DataError` that says what is wrong and what to do.
"""
import os
import zipfile
from typing import Optional

import numpy as np
import torch

from zoo.data.base import SPLIT_SEED, Split, finalize, fixed_split
from zoo.errors import DataError

VALID_FRACTION = TEST_FRACTION = 0.1
MIN_POINTS = 3
SAVE_HINT = "save it with np.savez(path, x=X[, y=Y]) or np.savez(path, x_train=..., x_test=...[, x_valid=...])"


def load_npz(path: str, binarize: str = "none", seed: int = 0):
    """Read ``path`` and return a :class:`~zoo.data.base.Dataset` named after the file."""
    return dataset_from_arrays(_read(path), path, binarize, seed)


def dataset_from_arrays(arrays: dict, path: str, binarize: str = "none", seed: int = 0, source: str = None):
    """A :class:`~zoo.data.base.Dataset` from arrays in the ``.npz`` layouts above (a file's, or those a user's data
    function returns); ``path`` names where they came from in every error."""
    name = os.path.splitext(os.path.basename(path))[0]
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    if "x" in arrays and "x_train" in arrays:
        raise DataError(f"{path}: holds both 'x' and 'x_train'; keep one layout ({SAVE_HINT})")
    if any(k.startswith("modality_") for k in arrays):  # named modalities (zoo/data/multimodal.py)
        from zoo.data.multimodal import dataset_from_modalities

        return dataset_from_modalities(arrays, path, binarize, seed, source)
    if "lengths" in arrays or any(k.startswith("lengths_") for k in arrays):
        return _sequences_from_arrays(arrays, name, path, binarize, seed, source)
    if "x" in arrays:
        x, image_shape = _features(path, "x", arrays["x"])
        y = _labels(path, "y", arrays.get("y"), len(x))
        if len(x) < MIN_POINTS:
            raise DataError(f"{path}: 'x' holds {len(x)} points; need at least {MIN_POINTS} (one per split)")
        n_valid = max(1, round(VALID_FRACTION * len(x)))
        n_test = max(1, round(TEST_FRACTION * len(x)))
        idx = fixed_split(len(x), n_valid, n_test, labels=_stratify(y))
        splits = [(x[i], None if y is None else y[i]) for i in idx]
        how = f"split 80/10/10 % by the zoo, fixed seed {SPLIT_SEED}"
    elif "x_train" in arrays:
        if "x_test" not in arrays:
            raise DataError(f"{path}: has 'x_train' but no 'x_test'; add x_test (or store everything as 'x' and let "
                            f"the zoo split it)")
        given = [k for k in ("train", "valid", "test") if f"x_{k}" in arrays]
        with_y = [k for k in given if f"y_{k}" in arrays]
        if with_y and with_y != given:
            raise DataError(f"{path}: labels for {', '.join('y_' + k for k in with_y)} but not for the other splits; "
                            f"give labels for all splits or none")
        parts, image_shape = {}, None
        for k in given:
            if arrays[f"x_{k}"].shape[1:] != arrays[f"x_{given[0]}"].shape[1:]:
                raise DataError(f"{path}: 'x_{k}' has points of shape {arrays[f'x_{k}'].shape[1:]}, unlike "
                                f"'x_{given[0]}' {arrays[f'x_{given[0]}'].shape[1:]}; all splits need the same shape")
            xk, image_shape = _features(path, f"x_{k}", arrays[f"x_{k}"])
            if len(xk) == 0:
                raise DataError(f"{path}: 'x_{k}' is empty; every split needs at least one point")
            parts[k] = (xk, _labels(path, f"y_{k}", arrays.get(f"y_{k}"), len(xk)))
        how = "the file's own train/valid/test split"
        if "valid" not in parts:
            xt, yt = parts["train"]
            if len(xt) < 2:
                raise DataError(f"{path}: 'x_train' holds {len(xt)} point(s), too few to carve a validation split "
                                f"from; add points or an 'x_valid'")
            tr, va, _ = fixed_split(len(xt), max(1, round(VALID_FRACTION * len(xt))), 0, labels=_stratify(yt))
            parts["train"] = (xt[tr], None if yt is None else yt[tr])
            parts["valid"] = (xt[va], None if yt is None else yt[va])
            how += f"; valid = 10 % carved from train, fixed seed {SPLIT_SEED}"
        splits = [parts[k] for k in ("train", "valid", "test")]
        if sum(len(s[0]) for s in splits) < MIN_POINTS:
            raise DataError(f"{path}: only {sum(len(s[0]) for s in splits)} points in all; need at least {MIN_POINTS}")
    else:
        raise DataError(f"{path}: no 'x' or 'x_train' array (found: {', '.join(sorted(arrays)) or 'none'}); "
                        f"{SAVE_HINT}")

    xs, scaled = _scale([s[0] for s in splits])
    info = {"source": source or f"npz file {os.path.abspath(path)}", "split": how,
            "sizes": {k: len(s) for k, s in zip(("train", "valid", "test"), xs)}}
    if scaled:
        info["scaling"] = "8-bit values 0..255 divided by 255"
    ys = [s[1] for s in splits]
    num_classes = int(max(int(v.max()) for v in ys if len(v)) + 1) if ys[0] is not None else None
    to_split = [Split(torch.from_numpy(xk), None if yk is None else torch.from_numpy(yk)) for xk, yk in zip(xs, ys)]
    return finalize(name, *to_split, binarize=binarize, seed=seed, image_shape=image_shape,
                    num_classes=num_classes, info=info)


def _sequences_from_arrays(arrays: dict, name: str, path: str, binarize: str, seed: int, source: str = None):
    """Sequences x (N, T, D) with their lengths (N,): a sequence data set (:mod:`zoo.data.sequences`)."""
    from zoo.data.sequences import dataset_from_sequences

    if "x" not in arrays or "lengths" not in arrays:
        raise DataError(f"{path}: sequences are read from 'x' (N, T, D) with 'lengths' (N,) (found: "
                        f"{', '.join(sorted(arrays))}); save them with np.savez(path, x=X, lengths=L[, y=Y])")
    x = arrays["x"]
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: 'x' has non-numeric dtype {x.dtype}; store numbers (float, int, uint8 or bool)")
    if x.ndim != 3:
        raise DataError(f"{path}: 'x' has shape {x.shape}, but a file with 'lengths' holds sequences of shape "
                        f"(N, T, D)" + (" -- for one value per step use x[..., None]" if x.ndim == 2 else ""))
    y = _labels(path, "y", arrays.get("y"), len(x))
    return dataset_from_sequences(x, arrays["lengths"], y, name, path, binarize, seed,
                                  source or f"npz file {os.path.abspath(path)}")


def _read(path):
    """The arrays of an .npz file by name."""
    if not os.path.isfile(path):
        raise DataError(f"data file {path} does not exist; check the path ({SAVE_HINT})")
    try:
        f = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is not a readable .npz archive ({type(e).__name__}); {SAVE_HINT}") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single .npy array, not an .npz archive; {SAVE_HINT}")
    arrays = {}
    with f:
        for key in f.files:
            try:
                value = f[key]
            except ValueError as e:
                if "Object arrays" in str(e) or "allow_pickle" in str(e):
                    raise DataError(f"{path}: '{key}' is an object (non-numeric) array; store plain numeric arrays "
                                    f"({SAVE_HINT})") from None
                raise DataError(f"{path}: cannot read '{key}' ({e}); {SAVE_HINT}") from None
            except Exception as e:  # a damaged member of the zip archive
                raise DataError(f"{path}: cannot read '{key}' ({type(e).__name__}: {e}); {SAVE_HINT}") from None
            if not isinstance(value, np.ndarray):
                raise DataError(f"{path}: '{key}' is not a NumPy array; {SAVE_HINT}")
            arrays[key] = value
    return arrays


def _features(path, key, a: np.ndarray):
    """(N, D) float32 features and the (C, H, W) image shape, or None for vectors."""
    if a.dtype.kind not in "biuf":
        raise DataError(f"{path}: '{key}' has non-numeric dtype {a.dtype}; store numbers (float, int, uint8 or bool)")
    if a.ndim == 2:
        shape = None
    elif a.ndim == 3:
        shape = (1,) + a.shape[1:]
    elif a.ndim == 4:
        shape = a.shape[1:]
    else:
        raise DataError(f"{path}: '{key}' has shape {a.shape}; expected (N, D), (N, H, W) or (N, C, H, W)"
                        + (" -- for one feature use x.reshape(-1, 1)" if a.ndim == 1 else ""))
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise DataError(f"{path}: '{key}' holds {bad} NaN/inf value(s); remove or impute them")
    flat = a.reshape(a.shape[0], int(np.prod(a.shape[1:])))
    if flat.shape[1] == 0:
        raise DataError(f"{path}: '{key}' has shape {a.shape}: points with no features")
    return flat, (None if shape is None else tuple(int(s) for s in shape))


def _labels(path, key, y: Optional[np.ndarray], n: int):
    if y is None:
        return None
    if y.dtype.kind not in "biuf":
        raise DataError(f"{path}: '{key}' has non-numeric dtype {y.dtype}; store integer class labels")
    y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"{path}: '{key}' holds {y.shape[0] if y.ndim else 0} label(s) of shape {y.shape} for {n} "
                        f"points; give one integer label per point")
    if y.dtype.kind == "f" and (not np.isfinite(y).all() or (y != np.round(y)).any()):
        raise DataError(f"{path}: '{key}' holds non-integer labels; store integer class labels 0..K-1")
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: '{key}' holds negative labels; use class labels 0..K-1")
    return y.astype(np.int64)


def _stratify(y):
    """Labels to stratify a split on, when they look like classes (few distinct values, each seen twice or more)."""
    if y is None:
        return None
    _, counts = np.unique(y, return_counts=True)
    return y if counts.min() >= 2 and len(counts) <= max(2, len(y) // 2) else None


def _scale(xs):
    """float32 copies; 8-bit pixel data (whole numbers in 0..255 with a maximum above 1) divided by 255."""
    out = [np.array(x, dtype=np.float32) for x in xs]
    filled = [o for o in out if o.size]
    eight_bit = (max(float(o.max()) for o in filled) > 1
                 and all(o.min() >= 0 and o.max() <= 255 and (o == np.round(o)).all() for o in filled))
    if eight_bit:
        for o in out:
            o /= 255.0
    return out, eight_bit
