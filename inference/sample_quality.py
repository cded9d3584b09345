"""Sample quality of a trained model on one scale for every family (VAEs, flows, M2, implicit generators): draw N
samples, pass them and the real test points through the zoo's feature classifier
(:mod:`inference.feature_classifier`), and compare (:mod:`inference.sample_metrics`):

* ``frechet_classifier_distance`` (FCD): Fréchet distance of the features, samples vs test points;
* ``kernel_classifier_distance`` (KCD): unbiased polynomial-kernel MMD^2 of the features, mean ± se over disjoint
  subsets;
* ``classifier_score``: exp(E KL(p(y|x) || p(y))) of the samples, ± its delta-method se;
* ``precision`` / ``recall`` (Kynkäänniemi et al. 2019, k = 3) on equally many samples and test points.

The same numbers for the validation split in place of the samples are the *reference* (what a generator that draws
from the data distribution scores at these sizes): :func:`reference_quality`.

Samples are what the model generates in the data space the classifier and the test points live in: x ~ p(x) for a
run on binarized data (the test images are {0, 1} draws), E[x|z] with z ~ p(z) otherwise (the grey-level decoder
mean, as the report's sample figures show; a flow's or an implicit generator's draws are their own). Image samples
are clipped to [0, 1] as images are drawn. Draws are seeded (``seed``) without touching the global RNG, in chunks.
"""
import inspect
import time
from typing import Optional

import torch

from inference import sample_metrics as sm

SAMPLE_CHUNK = 500
PR_K = 3


def draw_samples(model, n: int, like: torch.Tensor, draw: bool, chunk: int = SAMPLE_CHUNK, seed: int = 0,
                 clip: Optional[tuple] = None, progress=None) -> torch.Tensor:
    """n samples of ``model.sample`` (``mean=not draw`` where the model takes it), seeded, in chunks that grow from
    50 to ``chunk`` (a model that samples one dimension at a time, MAF or a PixelCNN decoder, shows its rate on the
    ``progress`` bar after the first small chunk)."""
    takes_mean = "mean" in inspect.signature(model.sample).parameters
    device = like.device
    out, done, size = [], 0, min(50, chunk)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
        torch.manual_seed(seed)
        while done < n:
            k = min(size, n - done)
            x = model.sample(k, like, mean=not draw) if takes_mean else model.sample(k, like)
            out.append(x.reshape(k, -1).float())
            done += k
            size = min(2 * size, chunk)
            if progress is not None:
                progress.update(k)
    x = torch.cat(out)
    return x if clip is None else x.clamp(*clip)


def _subsets(n_a: int, n_b: int) -> int:
    return max(2, min(10, min(n_a, n_b) // 10))


def compare(clf, fake: torch.Tensor, real: torch.Tensor, seed: int = 0) -> dict:
    """The metrics of generated points ``fake`` against real points ``real`` (rows), through classifier ``clf``."""
    f_fake, p_fake = clf.embed(fake)
    f_real, _ = clf.embed(real)
    n_pr = min(f_fake.shape[0], f_real.shape[0])
    gen = torch.Generator().manual_seed(seed)  # equal sizes: a random subset of the larger set (splits can be sorted)
    pr_fake = f_fake[torch.randperm(f_fake.shape[0], generator=gen)[:n_pr].to(f_fake.device)]
    pr_real = f_real[torch.randperm(f_real.shape[0], generator=gen)[:n_pr].to(f_real.device)]
    return {
        "frechet_classifier_distance": sm.frechet_distance(f_fake, f_real),
        "kernel_classifier_distance": sm.kernel_distance(f_fake, f_real, subsets=_subsets(len(f_fake), len(f_real)),
                                                         seed=seed),
        "classifier_score": sm.classifier_score(p_fake),
        **{k: v for k, v in sm.precision_recall(pr_real, pr_fake, k=PR_K).items() if k != "k"},
        "precision_recall": {"k": PR_K, "points": n_pr,
                             "protocol": f"{n_pr} generated points against {n_pr} real points (random subsets of "
                                         "the larger set, seeded)"},
    }


def minimum_points() -> int:
    """Fewest points on either side for every metric to be defined (disjoint KCD subsets of 2, k-NN balls)."""
    return max(4, PR_K + 2)


def sample_quality(model, clf, real: torch.Tensor, num_samples: int, draw: bool, clip=None, seed: int = 0,
                   real_split: str = "test", progress=None) -> dict:
    """eval.json's ``sample_quality``: ``num_samples`` samples of ``model`` against the points ``real``."""
    t0 = time.perf_counter()
    fake = draw_samples(model, num_samples, real, draw, seed=seed, clip=clip, progress=progress)
    finite = torch.isfinite(fake).all(1)
    if not bool(finite.all()):
        raise FloatingPointError(f"{int((~finite).sum())} of {num_samples} samples are not finite")
    part = compare(clf, fake, real, seed=seed)
    part.update(num_samples=num_samples, num_real=int(real.shape[0]), real_split=real_split, sample_seed=seed,
                samples="x ~ p(x) (binarized data: the real points are {0, 1} draws)" if draw else
                "E[x|z], z ~ p(z) (the decoder mean; a flow's or an implicit generator's own draws)",
                seconds=time.perf_counter() - t0)
    if clip is not None:
        part["clipped_to"] = list(clip)
    return part


def reference_quality(clf, real: torch.Tensor, other: torch.Tensor, real_split: str = "test",
                      other_split: str = "valid", seed: int = 0) -> dict:
    """The data's own row: the ``other_split`` points in place of samples, against the ``real_split`` points."""
    part = compare(clf, other, real, seed=seed)
    part.update(num_samples=int(other.shape[0]), num_real=int(real.shape[0]), real_split=real_split,
                generated_split=other_split, generated=f"the {other_split} split (real data in place of samples)")
    return part
