"""Sample-quality metrics on features and class probabilities: pure functions of tensors, any device.

The zoo cannot download Inception weights, so these are the Inception-based metrics of the GAN literature computed on
the features and predictions of the zoo's own classifier (:mod:`inference.feature_classifier`). They are named after
that classifier (FCD, KCD, classifier score), not FID/KID/IS, whose numbers mean Inception-v3 on ImageNet-like images
and are not comparable with these.

* :func:`frechet_distance` -- the Fréchet (2-Wasserstein) distance between Gaussians fitted to two feature sets
  (Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash equilibrium", the FID):

      d^2 = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)).

  The matrix square roots are taken in float64 through symmetric eigen-decompositions (S_a^(1/2) of S_a, then the
  square root of the symmetric PSD matrix S_a^(1/2) S_b S_a^(1/2), whose trace is the sum of the square roots of its
  eigenvalues), so the result is real; ``scipy.linalg.sqrtm(S_a S_b)`` of the original code works on a non-symmetric
  product and can return complex values.
* :func:`kernel_distance` -- the squared maximum mean discrepancy with the cubic polynomial kernel
  k(x, y) = (x.y / d + 1)^3, unbiased, averaged over subsets (Binkowski et al. 2018, "Demystifying MMD GANs", the KID).
* :func:`classifier_score` -- exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016, "Improved techniques for training
  GANs", the Inception score).
* :func:`precision_recall` -- improved precision and recall (Kynkäänniemi et al. 2019, "Improved precision and recall
  metric for assessing generative models"): each set's manifold is the union of k-nearest-neighbour balls around its
  points.
"""
import math
from typing import Optional

import torch


def _f64(x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.dim() != 2:
        raise ValueError(f"features must be a (points, dims) matrix, got shape {tuple(x.shape)}")
    return x.to(torch.float64)


def _mean_cov(x: torch.Tensor):
    """Mean and unbiased covariance (divided by n - 1, as numpy.cov) of the rows of x, in float64."""
    x = _f64(x)
    if x.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 points, got {x.shape[0]}")
    mu = x.mean(0)
    c = x - mu
    return mu, c.T @ c / (x.shape[0] - 1)


def _psd_sqrt(s: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigenvalues rounded below 0 clipped)."""
    s = (s + s.T) / 2
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance_gaussians(mu1, s1, mu2, s2) -> float:
    """The squared Fréchet distance between N(mu1, s1) and N(mu2, s2), in closed form (Dowson & Landau 1982):

        |mu1 - mu2|^2 + tr(s1) + tr(s2) - 2 tr((s1^(1/2) s2 s1^(1/2))^(1/2)),

    computed in float64 with symmetric eigen-decompositions (real and symmetric at every step)."""
    mu1, mu2 = (torch.as_tensor(m).to(torch.float64).reshape(-1) for m in (mu1, mu2))
    s1, s2 = (torch.as_tensor(s).to(torch.float64) for s in (s1, s2))
    if not (s1.shape == s2.shape == (mu1.shape[0], mu1.shape[0]) and mu1.shape == mu2.shape):
        raise ValueError(f"shapes do not match: mu {tuple(mu1.shape)}, {tuple(mu2.shape)}; "
                         f"covariances {tuple(s1.shape)}, {tuple(s2.shape)}")
    r1 = _psd_sqrt(s1)
    m = r1 @ s2 @ r1
    eig = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0)
    d2 = (mu1 - mu2).square().sum() + torch.trace(s1) + torch.trace(s2) - 2 * eig.sqrt().sum()
    return float(d2.clamp_min(0))


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """The squared Fréchet distance between Gaussians fitted to two feature sets (rows are points): the FID formula
    of Heusel et al. 2017 on whatever features are given (means, unbiased covariances;
    :func:`frechet_distance_gaussians`). Biased upwards at finite n (the covariances' noise adds to the traces), so
    numbers are comparable only at the same numbers of points."""
    mu_a, s_a = _mean_cov(feats_a)
    mu_b, s_b = _mean_cov(feats_b.to(feats_a.device))
    return frechet_distance_gaussians(mu_a, s_a, mu_b, s_b)


def _polynomial_mmd2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The unbiased MMD^2 estimates with k(x, y) = (x.y / d + 1)^3 between the rows of a[s] (m, d) and b[s] (n, d),
    for each block s of a (S, m, d) and b (S, n, d):

        1/(m(m-1)) sum_{i != j} k(a_i, a_j) + 1/(n(n-1)) sum_{i != j} k(b_i, b_j) - 2/(mn) sum_{i,j} k(a_i, b_j)."""
    d = a.shape[-1]
    m, n = a.shape[-2], b.shape[-2]
    k_aa = (a @ a.transpose(-1, -2) / d + 1) ** 3
    k_bb = (b @ b.transpose(-1, -2) / d + 1) ** 3
    k_ab = (a @ b.transpose(-1, -2) / d + 1) ** 3
    off_aa = k_aa.sum((-1, -2)) - k_aa.diagonal(dim1=-2, dim2=-1).sum(-1)
    off_bb = k_bb.sum((-1, -2)) - k_bb.diagonal(dim1=-2, dim2=-1).sum(-1)
    return off_aa / (m * (m - 1)) + off_bb / (n * (n - 1)) - 2 * k_ab.mean((-1, -2))


def kernel_distance(feats_a: torch.Tensor, feats_b: torch.Tensor, subsets: int = 10,
                    subset_size: Optional[int] = None, seed: int = 0) -> dict:
    """The kernel distance of Binkowski et al. 2018 (the KID formula): the unbiased estimate of

        MMD^2 = E k(a, a') + E k(b, b') - 2 E k(a, b),   k(x, y) = (x.y / d + 1)^3   (d: feature dimension),

    averaged over ``subsets`` pairs of subsets, with its standard error. Unbiased: its expectation is 0 when the two
    sets come from one distribution, so an estimate can be negative.

    Binkowski et al. average 100 overlapping random subsets of 1000 points and quote the spread of a single subset's
    estimate. Here the subsets are disjoint (both sets are shuffled with ``seed`` and cut into ``subsets`` blocks;
    ``subset_size`` points from each set, by default all of it: n_a // subsets and n_b // subsets), so the blocks'
    estimates are independent and ``se = std / sqrt(subsets)`` is the standard error of their mean. Returns
    ``{"mean", "se", "subsets", "subset_size": [m_a, m_b]}``."""
    a, b = _f64(feats_a), _f64(feats_b).to(feats_a.device)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} and {b.shape[1]}")
    if subsets < 1:
        raise ValueError(f"subsets must be positive, got {subsets}")
    m_a = a.shape[0] // subsets if subset_size is None else int(subset_size)
    m_b = b.shape[0] // subsets if subset_size is None else int(subset_size)
    if min(m_a, m_b) < 2 or m_a * subsets > a.shape[0] or m_b * subsets > b.shape[0]:
        raise ValueError(f"{subsets} disjoint subsets of at least 2 points need more points than {a.shape[0]} and "
                         f"{b.shape[0]} (subset size {m_a}, {m_b})")
    gen = torch.Generator().manual_seed(seed)
    ia = torch.randperm(a.shape[0], generator=gen)[:m_a * subsets].to(a.device)
    ib = torch.randperm(b.shape[0], generator=gen)[:m_b * subsets].to(b.device)
    blocks_a = a[ia].reshape(subsets, m_a, -1)
    blocks_b = b[ib].reshape(subsets, m_b, -1)
    est = _polynomial_mmd2(blocks_a, blocks_b)
    se = float(est.std(unbiased=True) / math.sqrt(subsets)) if subsets > 1 else float("nan")
    return {"mean": float(est.mean()), "se": se, "subsets": subsets, "subset_size": [m_a, m_b]}


def classifier_score(probs: torch.Tensor) -> dict:
    """exp(E_x KL(p(y|x) || p(y))), p(y) = E_x p(y|x): the Inception score of Salimans et al. 2016 with another
    classifier's p(y|x). Between 1 (every sample gets the same class distribution: a collapsed or unrecognisable
    generator) and the number of classes C (every sample confidently one class, the classes equally often).

    Standard error by the delta method: E KL = H(p(y)) - E_x H(p(y|x)) is a smooth function of two means, whose
    per-point influence is exactly KL_i - E KL with KL_i = KL(p(y|x_i) || p(y)) (the term from the estimated p(y)
    cancels), so ``se(log score) = std(KL_i) / sqrt(n)`` and ``se(score) = score * se(log score)``. (Salimans et al.
    quote the spread of the score over 10 splits instead.) Returns ``{"mean", "se"}``."""
    p = torch.as_tensor(probs).to(torch.float64)
    if p.dim() != 2 or p.shape[0] < 2:
        raise ValueError(f"probabilities must be a (points >= 2, classes) matrix, got shape {tuple(p.shape)}")
    p = p / p.sum(1, keepdim=True)
    py = p.mean(0, keepdim=True)
    kl = torch.xlogy(p, p).sum(1) - torch.xlogy(p, py.expand_as(p)).sum(1)
    mean_kl = kl.mean()
    score = mean_kl.exp()
    se = score * kl.std(unbiased=True) / math.sqrt(p.shape[0])
    return {"mean": float(score), "se": float(se)}


def _kth_neighbour_radius(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    out = []
    for start in range(0, x.shape[0], chunk):
        d = torch.cdist(x[start:start + chunk], x)
        out.append(d.kthvalue(k + 1, dim=1).values)  # the 1st smallest is the point itself (distance 0)
    return torch.cat(out)


def _inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int) -> torch.Tensor:
    """For each point: whether it lies in some ball (centre_i, radius_i)."""
    out = []
    for start in range(0, points.shape[0], chunk):
        d = torch.cdist(points[start:start + chunk], centres)
        out.append((d <= radii).any(1))
    return torch.cat(out)


def precision_recall(real_feats: torch.Tensor, fake_feats: torch.Tensor, k: int = 3, chunk: int = 1024) -> dict:
    """Improved precision and recall of Kynkäänniemi et al. 2019. The manifold of a set is the union of balls around
    its points, each of radius the distance to that point's k-th nearest neighbour in the set:

        precision = share of generated points inside the real manifold   (are the samples realistic?)
        recall    = share of real points inside the generated manifold   (is the data's variety covered?)

    Both sets should have about the same size (the paper's protocol, and the radii shrink as a set grows). No standard
    error is given: the shares are conditional on the manifolds built from the same samples, so a binomial error over
    points would understate the spread. Memory is bounded by ``chunk`` rows of distances. Returns ``{"precision",
    "recall", "k"}``."""
    real, fake = _f64(real_feats), _f64(fake_feats).to(real_feats.device)
    if min(real.shape[0], fake.shape[0]) <= k:
        raise ValueError(f"precision and recall with k={k} need more than {k} points in each set "
                         f"({real.shape[0]} real, {fake.shape[0]} generated)")
    r_real = _kth_neighbour_radius(real, k, chunk)
    r_fake = _kth_neighbour_radius(fake, k, chunk)
    precision = _inside(fake, real, r_real, chunk).double().mean()
    recall = _inside(real, fake, r_fake, chunk).double().mean()
    return {"precision": float(precision), "recall": float(recall), "k": k}
