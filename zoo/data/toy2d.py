"""Two-dimensional toy densities for normalizing-flow pictures: ``moons``, ``circles``, ``checkerboard``.

The samplers follow the toy data of FFJORD (Grathwohl et al. 2019, "FFJORD: Free-form continuous dynamics for scalable
reversible generative models") and the flow literature after it: scikit-learn's ``make_moons`` / ``make_circles`` with
noise, rescaled to roughly [-4, 4]^2, and the 4x4 checkerboard (uniform on alternating unit squares, scaled by 2).
Every set is drawn once from a FIXED seed (the run seed is ignored) and split 10000/1000/1000; values are real numbers,
so the only binarization is ``none`` and there is no ``image_shape``.
"""
import numpy as np
import torch

from zoo.data.base import DATASETS, Split, finalize

N_TRAIN, N_VALID, N_TEST = 10_000, 1_000, 1_000
TOY_SEED = 20190101


def _moons(n, rng):
    from sklearn.datasets import make_moons

    x, _ = make_moons(n_samples=n, noise=0.1, random_state=int(rng.integers(2**31)))
    return x * 2 + np.array([-1.0, -0.2])


def _circles(n, rng):
    from sklearn.datasets import make_circles

    x, _ = make_circles(n_samples=n, factor=0.5, noise=0.08, random_state=int(rng.integers(2**31)))
    return x * 3


def _checkerboard(n, rng):
    x1 = rng.random(n) * 4 - 2
    x2 = rng.random(n) - rng.integers(0, 2, n) * 2.0
    x2 = x2 + np.floor(x1) % 2
    return np.stack([x1, x2], axis=1) * 2


def _toy(name, sampler, binarize, seed, source):
    rng = np.random.Generator(np.random.PCG64(TOY_SEED))
    x = sampler(N_TRAIN + N_VALID + N_TEST, rng)
    x = torch.tensor(x[rng.permutation(len(x))], dtype=torch.float32)  # make_* return points sorted by class
    train, valid, test = torch.split(x, [N_TRAIN, N_VALID, N_TEST])
    return finalize(name, Split(train.clone()), Split(valid.clone()), Split(test.clone()),
                    binarize="none" if binarize is None else binarize, seed=seed,
                    info={"source": source, "split": f"{N_TRAIN}/{N_VALID}/{N_TEST} train/valid/test, "
                                                     f"fixed seed {TOY_SEED}",
                          "sizes": {"train": N_TRAIN, "valid": N_VALID, "test": N_TEST}})


_PAPER = "Grathwohl et al. 2019 (FFJORD) toy densities"


@DATASETS.register("moons", paper=_PAPER, summary="2-D two moons (sklearn make_moons, noise 0.1), 10000/1000/1000")
def moons(binarize=None, seed=0, root=None):
    """Two interleaved half circles in 2-D."""
    return _toy("moons", _moons, binarize, seed, "sklearn.datasets.make_moons(noise=0.1), x*2 + (-1, -0.2)")


@DATASETS.register("circles", paper=_PAPER,
                   summary="2-D concentric circles (sklearn make_circles, factor 0.5, noise 0.08), 10000/1000/1000")
def circles(binarize=None, seed=0, root=None):
    """Two concentric noisy circles in 2-D."""
    return _toy("circles", _circles, binarize, seed, "sklearn.datasets.make_circles(factor=0.5, noise=0.08), x*3")


@DATASETS.register("checkerboard", paper=_PAPER, summary="2-D 4x4 checkerboard on [-4, 4]^2, 10000/1000/1000")
def checkerboard(binarize=None, seed=0, root=None):
    """Uniform density on the dark squares of a 4x4 checkerboard."""
    return _toy("checkerboard", _checkerboard, binarize, seed, "4x4 checkerboard sampler (FFJORD), scaled to [-4, 4]^2")
