"""Labelled subsets for semi-supervised learning (``zoo train --labels N``).

Convention used everywhere in the zoo: a label tensor y of shape (N,) holds the class index where the label is known
and :data:`UNLABELLED` (-1) where it is not. A mini-batch may mix both; models with a label site (M2, M1+M2) split it
into a labelled and an unlabelled part (see :func:`zoo.m2.label_parts`).

:func:`mask_labels` keeps N labels of the training split, class-balanced (N // C per class, the remainder spread over
randomly chosen classes) and drawn with a generator seeded by the run seed, and hides every other training label. The
validation labels are hidden as well, so that the N chosen labels are the only ones a semi-supervised run ever sees
(the validation loss that picks the best epoch is then the unlabelled bound, a purely generative criterion). The test
labels are kept: they score the classifier.
"""
import dataclasses

import numpy as np
import torch

from zoo.errors import ConfigError

UNLABELLED = -1
LABEL_STREAM = 2014  # separates the label draw from every other use of the run seed


def balanced_label_subset(labels, n: int, num_classes: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n`` points of ``labels`` (int array, every class in 0..C-1), class-balanced and seeded."""
    labels = np.asarray(labels).reshape(-1)
    if n < num_classes:
        raise ConfigError(f"--labels {n}: a class-balanced subset needs at least one label per class "
                          f"({num_classes} classes)")
    if n > labels.shape[0]:
        raise ConfigError(f"--labels {n}: the training split has only {labels.shape[0]} points")
    rng = np.random.Generator(np.random.PCG64([seed, LABEL_STREAM]))
    quota = np.full(num_classes, n // num_classes)
    quota[rng.permutation(num_classes)[:n % num_classes]] += 1
    chosen = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if members.size < quota[c]:
            raise ConfigError(f"--labels {n}: class {c} has only {members.size} training points, "
                              f"{quota[c]} are needed for a balanced subset; ask for fewer labels")
        chosen.append(rng.choice(members, size=quota[c], replace=False))
    return np.sort(np.concatenate(chosen))


def auto_repeat(n_labelled: int, n_train: int, share: float = 0.2) -> int:
    """How many copies of each labelled point make them about ``share`` of the training split (at least 1)."""
    n_unlabelled = max(n_train - n_labelled, 0)
    return max(1, round(share / (1.0 - share) * n_unlabelled / max(n_labelled, 1)))


def mask_labels(data, n: int, seed: int = 0, repeat=1):
    """A copy of the :class:`~zoo.data.base.Dataset` ``data`` that keeps ``n`` training labels (see module doc).

    ``repeat`` > 1 appends ``repeat - 1`` more copies of every labelled point (x and label) to the training split, so
    that a mini-batch holds more of them: with 100 labels among 4000 points a batch of 128 would hold 3 on average,
    and the labelled terms would be seen once per epoch. ``repeat="auto"`` makes them about 20 % of the split
    (:func:`auto_repeat`). Copies are binarized independently under dynamic binarization."""
    from zoo.data.base import Split

    if data.train.y is None or data.num_classes is None:
        raise ConfigError(f"--labels needs a labelled data set; {data.name!r} has no labels")
    y = data.train.y
    keep = balanced_label_subset(y.cpu().numpy(), n, data.num_classes, seed)
    keep_t = torch.as_tensor(keep, device=y.device)
    masked = torch.full_like(y, UNLABELLED)
    masked[keep_t] = y[keep_t]
    valid = data.valid if data.valid.y is None else Split(data.valid.x, torch.full_like(data.valid.y, UNLABELLED))
    if repeat == "auto":
        repeat = auto_repeat(n, len(y))
    repeat = int(repeat)
    if repeat < 1:
        raise ConfigError(f"--label-repeat must be a positive integer or auto, got {repeat}")
    train = Split(data.train.x, masked)
    if repeat > 1:
        extra_x = data.train.x[keep_t].repeat(repeat - 1, 1)
        train = Split(torch.cat([data.train.x, extra_x]), torch.cat([masked, y[keep_t].repeat(repeat - 1)]))
    per_class = np.bincount(y.cpu().numpy()[keep], minlength=data.num_classes).tolist()
    info = dict(data.info)
    info["labels"] = {"labelled": int(n), "unlabelled": int(len(y) - n), "per_class": per_class, "seed": int(seed),
                      "copies_of_each_labelled_point": repeat, "validation_labels": "hidden"}
    return dataclasses.replace(data, train=train, valid=valid, info=info)


def labelled_mask(y: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the points whose label is known."""
    return y >= 0
