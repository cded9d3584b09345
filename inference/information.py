"""The ELBO's information decomposition over the test set: index-code mutual information, marginal KL, total
correlation and dimension-wise KL, with stated estimators and standard errors.

For N test points {x_n} and a guide q(z|x), the aggregate posterior of the test set is the mixture
q(z) = (1/N) sum_n q(z|x_n). With n uniform on 1..N (the "index" of Hoffman & Johnson),

    E_n KL(q(z|x_n) || p(z)) = I_q(n; z) + KL(q(z) || p(z))                         (Hoffman & Johnson 2016)

(the ELBO's KL term = index-code mutual information + marginal KL; "ELBO surgery: yet another way to carve up the
variational evidence lower bound"), and, when the prior factorises, p(z) = prod_j p(z_j),

    KL(q(z) || p(z)) = TC + sum_j KL(q(z_j) || p(z_j)),   TC = KL(q(z) || prod_j q(z_j))   (Chen et al. 2018)

(total correlation and dimension-wise KL; Chen, Li, Grosse & Duvenaud 2018, "Isolating sources of disentanglement in
VAEs", the beta-TCVAE paper; q(z_j) = (1/N) sum_n q(z_j|x_n) is the j-th marginal of the aggregate). The mutual
information is at most log N: log q(z) >= log q(z|x_n) - log N for every z, because the mixture holds x_n's own
component with weight 1/N (Hoffman & Johnson's bound; it holds for every single sample of the estimator below).

**Estimators.** K draws z_nk ~ q(z|x_n) per point (the guide traced under a particle plate, the model replayed on them,
as :mod:`inference.importance` does), then, for every draw, the full N-component mixture

    log q(z_nk)   = logsumexp_m log q(z_nk | x_m) - log N                          (N x N x K evaluations)
    log q(z_nk,j) = logsumexp_m log q_j(z_nk,j | x_m) - log N                      (per dimension j)

computed exactly (not by Chen et al.'s minibatch-weighted sampling) in chunks of (draws x points), so memory is one
chunk whatever N is. Each term is the average over (n, k) of a per-draw quantity:

    KL term  = mean[log q(z|x_n) - log p(z)]        I_q = mean[log q(z|x_n) - log q(z)]
    marginal KL = mean[log q(z) - log p(z)]         TC  = mean[log q(z) - sum_j log q(z_j)]
    dimension-wise KL = mean[sum_j (log q(z_j) - log p(z_j))]

so I_q + marginal KL = KL term holds draw by draw (to float64 rounding), and TC + dimension-wise KL = marginal KL to
the float32 rounding of log p(z) against sum_j log p(z_j). Standard errors: the K draws of one point share x_n, so each
point's K values are averaged first and the standard error is that of the N per-point averages. It measures the Monte
Carlo error for *this* test set's aggregate; as an estimate of the population's I_q (q(z) = E_{p(x)} q(z|x)) the
finite-N mixture is biased (I_q of the test set can never exceed log N, whatever the encoder).

**z with several latent sites** (hvae: z2, z1) is the concatenation of all the guide's latents, with q(z|x) the guide's
joint density (q(z2|x) q(z1|x, z2)) and p(z) the model's joint prior (p(z2) p(z1|z2)); q(z|x_m) at a draw of another
point is the guide conditioned on that draw (``poutine.condition``) under a plate of draws left of its own plates. TC
and the dimension-wise KL need the per-dimension marginals q(z_j|x_m) and p(z_j): they are computed for a single latent
site whose guide density and prior are products of univariate densities (the diagonal Gaussian guide, the standard or
any diagonal prior); otherwise (several sites, flow guides, a VampPrior or flow prior) eval.json says why they are
absent and still gives I_q and the marginal KL. Skipped with a reason: discrete latents (m2), latents on a sphere
(svae), guides without a density (implicit, deterministic), guides that cannot score points they did not draw (planar,
radial and Sylvester flows have no inverse), sequences (padded steps), models without latents.
"""
import math
import time
from typing import Dict, NamedTuple, Optional

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch.distributions import constraints

from inference.importance import _site_log_prob, scale_and_mask, sum_to_points
from zoo.errors import ConfigError

DEFAULT_POINTS = 1000  # test points in the aggregate posterior (the first ones of the split)
DEFAULT_SAMPLES = 10   # draws z_nk ~ q(z|x_n) per point
# A guide whose density at another point's draw is not a product of univariate densities (a flow: its inverse runs per
# pair, an autoregressive one D passes) costs N^2 K network evaluations: measured > 20 CPU minutes for iaf:2 on
# mnist5k's 500 points; such guides get at most these many points and draws by default (the eval.json says so).
COSTLY_POINTS = 128
COSTLY_SAMPLES = 4
CHUNK_FLOATS = 2 ** 21  # floats in one (draws x points x latent dims) block on a CPU
CHUNK_FLOATS_GPU = 2 ** 25


class InformationSamples(NamedTuple):
    """Per-draw log-densities, (N, K) float64 each; the dims terms are None where ``dims_reason`` says why."""
    log_q_own: torch.Tensor    # log q(z_nk | x_n)
    log_p: torch.Tensor        # log p(z_nk) (the model's joint prior over all latent sites)
    log_q_agg: torch.Tensor    # log q(z_nk) = logsumexp_m log q(z_nk | x_m) - log N
    log_q_dims: Optional[torch.Tensor]  # (N, K, D) log q(z_nk,j)
    log_p_dims: Optional[torch.Tensor]  # (N, K, D) log p(z_nk,j)
    dims_reason: Optional[str]
    path: str                  # "direct" (one site: q(.|x_m) from one guide trace) or "conditioned"


def _is_real(support) -> bool:
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.real


def _latent_nodes(trace, names=None):
    return [(name, site) for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site_is_subsample(site)
            and (name in names if names is not None else not site["is_observed"])]


def _univariate(fn):
    """The univariate distribution whose product is ``fn`` (Independent of a batch of univariate densities), or None."""
    while isinstance(fn, torch.distributions.Independent):
        fn = fn.base_dist
    if isinstance(fn, (torch.distributions.TransformedDistribution, pyro.distributions.Delta)):
        return None
    return fn if fn.event_shape == torch.Size([]) else None


def _per_dim(site) -> Optional[torch.Tensor]:
    """log-densities of each coordinate of the site's value (K, B, ...), as (K, B, D), when the site's density is a
    product of univariate ones (and unscaled, unmasked); else None."""
    base = _univariate(site["fn"])
    if base is None or site["mask"] is not None or not (isinstance(site["scale"], float) and site["scale"] == 1.0):
        return None
    value = site["value"]
    lp = base.log_prob(value)
    if lp.shape != value.shape or value.dim() < 2:
        return None
    return lp.reshape(lp.shape[:2] + (-1,))


# ---------------------------------------------------------------------------------------------- reasons to skip
def information_reason(model, guide, x, y=None) -> Optional[str]:
    """Why the decomposition cannot be computed for this model and guide (None: it can). Probes the guide on two
    points: it must score, at a draw of one point, the density q(z|x) of another."""
    if getattr(model, "implicit", False):
        return "implicit generator: there is no q(z|x) or p(x, z) to decompose"
    if getattr(guide, "implicit", False) or hasattr(guide, "implicit_guide"):
        return ("the guide has no density q(z|x) (implicit or deterministic guide), and the decomposition needs "
                "log q(z|x_m) at every draw")
    if getattr(model, "exact_likelihood", False):
        return "no latent variables"
    if getattr(model, "is_sequence_model", False) or getattr(model, "step_dim", None) is not None:
        return ("sequences: the latents of padded steps are masked out of q(z|x), so the mixture of q(z|x_m) over "
                "sequences of different lengths is not one density over z")
    if x.shape[0] < 2:
        return f"the aggregate posterior needs at least 2 test points, got {x.shape[0]}"
    sites = None
    try:
        sites = model.latent_sites()
    except Exception:  # noqa: BLE001 - a model outside the contract: the traces below decide
        pass
    for s in sites or ():
        if s.support in ("categorical", "discrete"):
            return (f"discrete latent {s.name!r}: the decomposition is computed for continuous latents (a mixed "
                    f"discrete-continuous z has no density over one space)")
        if s.support != "real":
            return (f"latent {s.name!r} lives on a {s.support}, not in R^n: the decomposition is computed for "
                    f"real-valued latents")
    if sites is not None and not sites:
        return "no latent variables"
    xb, yb = x[:2], None if y is None else y[:2]
    with torch.no_grad():
        gtrace = poutine.trace(guide).get_trace(xb, yb)
        names = []
        for name, site in _latent_nodes(gtrace):
            fn = site["fn"]
            if site["infer"].get("is_auxiliary"):
                return (f"the guide has an auxiliary site {name!r}: its q(z|x) is a marginal over it, not a density "
                        f"it can evaluate")
            if fn.support.is_discrete or site["infer"].get("enumerate"):
                return f"discrete latent {name!r}: the decomposition is computed for continuous latents"
            base = fn
            while isinstance(base, torch.distributions.Independent):
                base = base.base_dist
            if isinstance(base, pyro.distributions.Delta):
                return f"the guide's {name!r} is a point mass (no density q(z|x))"
            names.append(name)
        if not names:
            return "no latent variables"
        mtrace = poutine.trace(poutine.replay(model, trace=gtrace)).get_trace(xb, yb)
        for name, site in _latent_nodes(mtrace, names):
            fn = site["fn"]
            if fn.support.is_discrete:
                return f"discrete latent {name!r}: the decomposition is computed for continuous latents"
            if not _is_real(fn.support):
                return (f"latent {name!r} lives on {fn.support}, not in R^n: the decomposition is computed for "
                        f"real-valued latents")
        try:  # q(z | x_1) at the draw of x_0: a flow without an inverse cannot score it
            z = {n: gtrace.nodes[n]["value"][:1].detach().clone() for n in names}
            lq = _mixture_log_q(guide, z, xb[1:], None if yb is None else yb[1:], names,
                                "direct" if len(names) == 1 else "conditioned", dims=False)[0]
            if not bool(torch.isfinite(lq).all()):
                raise ValueError("non-finite log-density")
        except Exception as e:  # noqa: BLE001 - NotImplementedError / KeyError (planar, radial, Sylvester)
            return (f"the guide cannot evaluate q(z|x) at latents drawn for other points ({type(e).__name__}"
                    f"{': ' + str(e).splitlines()[0] if str(e) else ''}; planar, radial and Sylvester flows invert "
                    f"only what they produced): use --guide diagonal, iaf:K or householder:K")
    return None


# ---------------------------------------------------------------------------------------------- the estimator
def _draw(model, guide, x, y, K: int):
    """K draws per point: latents {name: (K, B, ...)}, log q(z|x_n) (K, B), log p(z) (K, B), and the per-dimension
    log p(z_j) (K, B, D) or a reason it is unavailable."""
    B = x.shape[0]
    shape = (K, B)
    with pyro.plate("information_draws", K, dim=-(getattr(guide, "max_plate_nesting", 1) + 1)):
        gtrace = poutine.trace(guide).get_trace(x, y)
    with pyro.plate("information_draws", K, dim=-(model.max_plate_nesting + 1)):
        mtrace = poutine.trace(poutine.replay(model, trace=gtrace)).get_trace(x, y)
    gsites = _latent_nodes(gtrace)
    names = [n for n, _ in gsites]
    log_q = sum(_site_log_prob(site, shape) for _, site in gsites)
    msites = _latent_nodes(mtrace, set(names))
    log_p = sum(_site_log_prob(site, shape) for _, site in msites)
    latents = {n: site["value"].detach() for n, site in gsites}
    p_dims, reason = None, None
    if len(names) > 1:
        reason = (f"z concatenates {len(names)} latent sites ({', '.join(names)}); the guide and the prior couple them "
                  f"(e.g. q(z1|x, z2), p(z1|z2)), so the per-dimension marginals q(z_j), p(z_j) are not available: "
                  f"TC and dimension-wise KL are computed for a single latent site")
    elif _per_dim(gsites[0][1]) is None:
        reason = ("the guide's q(z|x) is not a product of univariate densities (a flow or a full covariance): its joint "
                  "density is exact, its per-dimension marginals q(z_j|x) are not available, so TC and "
                  "dimension-wise KL are absent")
    else:
        p_dims = _per_dim(msites[0][1]) if msites else None
        if p_dims is None:
            reason = ("the prior p(z) is not a product of per-dimension densities (e.g. a VampPrior, mixture or flow "
                      "prior): Chen et al.'s split KL(q(z)||p(z)) = TC + sum_j KL(q(z_j)||p(z_j)) needs "
                      "p(z) = prod_j p(z_j)")
        elif not bool(torch.allclose(p_dims.double().sum(-1), log_p.double(), rtol=1e-4, atol=1e-3)):
            p_dims, reason = None, ("the prior's per-dimension densities do not sum to its joint log p(z) (a masked or "
                                    "scaled site): TC and dimension-wise KL are absent")
    return latents, log_q, log_p, p_dims, reason


def _mixture_log_q(guide, z: Dict[str, torch.Tensor], x, y, names, path: str, dims: bool, fns=None):
    """log q(z_c | x_m) for C draws z (each site (C, ...)) and B points x: (C, B), and with ``dims`` the per-dimension
    (C, B, D) (single site with a product density; None otherwise). ``fns``: the guide's site distributions at x (the
    direct path reuses them across chunks of draws)."""
    C, B = next(iter(z.values())).shape[0], x.shape[0]
    expanded = {n: v.unsqueeze(1).expand((C, B) + v.shape[1:]) for n, v in z.items()}
    if path == "direct":  # one site: q(z|x_m) depends on x_m alone, so its distribution is evaluated at any draw
        if fns is None:
            fns = guide_site_distributions(guide, x, y, names)
        name = names[0]
        fn, site = fns[name]
        value = expanded[name]
        base = _univariate(fn) if dims else None
        if base is not None:
            lp_dims = base.log_prob(value)
            lp_dims = lp_dims.reshape(C, B, -1)
            return lp_dims.sum(-1), lp_dims
        lp = scale_and_mask(site, fn.log_prob(value))
        return sum_to_points(lp, (C, B)), None
    conditioned = poutine.condition(guide, data=expanded)
    with pyro.plate("information_draws", C, dim=-(getattr(guide, "max_plate_nesting", 1) + 1)):
        trace = poutine.trace(conditioned).get_trace(x, y)
    sites = _latent_nodes(trace, set(names))
    lq = sum(_site_log_prob(site, (C, B)) for _, site in sites)
    base = _univariate(sites[0][1]["fn"]) if dims and len(sites) == 1 else None
    if base is not None:
        return lq, base.log_prob(sites[0][1]["value"]).reshape(C, B, -1)
    return lq, None


def guide_site_distributions(guide, x, y, names):
    """{name: (distribution, trace site)} of the guide's latent sites at the points x (batch shape (B,))."""
    trace = poutine.trace(guide).get_trace(x, y)
    return {n: (site["fn"], site) for n, site in _latent_nodes(trace, set(names))}


@torch.no_grad()
def information_samples(model, guide, x, y=None, num_samples: int = DEFAULT_SAMPLES, batch_size: int = 100,
                        budget: Optional[int] = None, path: str = "auto") -> InformationSamples:
    """The per-draw log-densities of the estimators (module docstring) over the points x, all of them in the mixture.

    ``path``: ``direct`` (a single latent site: the guide's distribution at each block of points, evaluated at every
    chunk of draws), ``conditioned`` (the guide conditioned on each chunk of draws under a plate: any number of
    sites), ``auto`` (direct for one site). ``budget`` bounds the floats of one (draws x points x dims) block."""
    if int(num_samples) < 1:
        raise ConfigError(f"the information decomposition needs at least 1 draw per point, got {num_samples}")
    if path not in ("auto", "direct", "conditioned"):
        raise ConfigError(f"information path must be auto, direct or conditioned, got {path!r}")
    N, K = x.shape[0], int(num_samples)
    if N < 2:
        raise ConfigError(f"the aggregate posterior needs at least 2 points, got {N}")
    batch_size = max(1, int(batch_size))
    draws, own, prior, p_dims = {}, [], [], []
    reason = None
    for start in range(0, N, batch_size):
        xb, yb = x[start:start + batch_size], None if y is None else y[start:start + batch_size]
        latents, lq, lp, pd, reason = _draw(model, guide, xb, yb, K)
        for n, v in latents.items():  # (K, B, ...) -> (B*K, ...): draw c = n*K + k
            draws.setdefault(n, []).append(v.transpose(0, 1).reshape((-1,) + v.shape[2:]))
        own.append(lq.T.double())
        prior.append(lp.T.double())
        if pd is not None:
            p_dims.append(pd.transpose(0, 1).double())
    z = {n: torch.cat(v) for n, v in draws.items()}
    names = list(z)
    if path == "auto":
        path = "direct" if len(names) == 1 else "conditioned"
    if path == "direct" and len(names) != 1:
        raise ConfigError(f"the direct path evaluates one latent site; this guide has {len(names)} ({', '.join(names)})")
    dims = reason is None and len(p_dims) > 0
    total = N * K
    width = sum(int(np.prod(v.shape[1:])) for v in z.values())
    if budget is None:
        budget = CHUNK_FLOATS if x.device.type == "cpu" else CHUNK_FLOATS_GPU
    # a diagonal guide's block is (draws, points, dims); a flow's or a conditioned guide's networks run on every pair
    per_pair = width if path == "direct" and dims else width + getattr(guide, "context_dim", 0) + 256
    block = min(N, batch_size)
    chunk = max(1, min(total, budget // max(1, block * per_pair)))
    agg = x.new_full((total,), -math.inf, dtype=torch.float64)
    agg_dims = x.new_full((total, width), -math.inf, dtype=torch.float64) if dims else None
    for m0 in range(0, N, block):
        xm, ym = x[m0:m0 + block], None if y is None else y[m0:m0 + block]
        fns = guide_site_distributions(guide, xm, ym, names) if path == "direct" else None
        for c0 in range(0, total, chunk):
            zc = {n: v[c0:c0 + chunk] for n, v in z.items()}
            lq, lq_dims = _mixture_log_q(guide, zc, xm, ym, names, path, dims, fns)
            agg[c0:c0 + chunk] = torch.logaddexp(agg[c0:c0 + chunk], torch.logsumexp(lq.double(), dim=1))
            if dims:
                if lq_dims is None:
                    raise RuntimeError("the guide's per-dimension densities vanished between chunks")
                agg_dims[c0:c0 + chunk] = torch.logaddexp(agg_dims[c0:c0 + chunk],
                                                          torch.logsumexp(lq_dims.double(), dim=1))
    log_n = math.log(N)
    return InformationSamples(
        log_q_own=torch.cat(own), log_p=torch.cat(prior), log_q_agg=(agg - log_n).reshape(N, K),
        log_q_dims=(agg_dims - log_n).reshape(N, K, width) if dims else None,
        log_p_dims=torch.cat(p_dims).reshape(N, K, width) if dims else None,
        dims_reason=reason, path=path)


def _mean_se(values: torch.Tensor) -> dict:
    """Mean and standard error of (N, K) per-draw values: the se of the N per-point averages over k."""
    per_point = values.double().mean(1).cpu().numpy()
    se = float(per_point.std(ddof=1) / math.sqrt(len(per_point))) if len(per_point) > 1 else float("nan")
    return {"mean": float(per_point.mean()), "se": se}


ESTIMATOR = ("z_nk ~ q(z|x_n), K draws per point; log q(z_nk) = logsumexp_m log q(z_nk|x_m) - log N over all N test "
             "points (the test set's exact aggregate posterior, N x N x K evaluations in chunks), log q(z_nk,j) the "
             "same per dimension; I_q = mean[log q(z|x_n) - log q(z)], marginal KL = mean[log q(z) - log p(z)], "
             "TC = mean[log q(z) - sum_j log q(z_j)], dimension-wise KL = mean[sum_j log q(z_j) - log p(z_j)]; "
             "standard errors over points of each point's average over its K draws (Hoffman & Johnson 2016; "
             "Chen et al. 2018)")


def summarize_information(s: InformationSamples, seconds: float = 0.0) -> dict:
    """eval.json's ``information`` from the per-draw log-densities."""
    N, K = s.log_q_own.shape
    part = {"estimator": ESTIMATOR, "points": int(N), "samples_per_point": int(K), "path": s.path,
            "kl": _mean_se(s.log_q_own - s.log_p),
            "mutual_information": _mean_se(s.log_q_own - s.log_q_agg),
            "marginal_kl": _mean_se(s.log_q_agg - s.log_p),
            "max_mutual_information": math.log(N)}
    if s.log_q_dims is not None:
        q_dims = s.log_q_dims.sum(-1)
        part["total_correlation"] = _mean_se(s.log_q_agg - q_dims)
        part["dimensionwise_kl"] = _mean_se(q_dims - s.log_p_dims.sum(-1))
        part["dimensionwise_kl_per_dim"] = [float(v) for v in (s.log_q_dims - s.log_p_dims).mean((0, 1)).cpu()]
    else:
        part["total_correlation"] = part["dimensionwise_kl"] = None
        part["dimensionwise_reason"] = s.dims_reason
    part["seconds"] = float(seconds)
    return part


def evaluate_information(model, guide, x, y=None, num_samples: int = DEFAULT_SAMPLES,
                         max_points: int = DEFAULT_POINTS, batch_size: int = 100, seed: Optional[int] = 0,
                         limit_costly: bool = True):
    """(eval.json's ``information``, None) over the first ``max_points`` points of x, or (None, the reason it cannot
    be computed for this model and guide). With ``seed`` the draws are seeded on a forked random stream (the
    caller's stream is left as it was). With ``limit_costly`` a guide whose mixture is not elementwise work (see
    :func:`_cheap_mixture`) gets at most COSTLY_POINTS points and COSTLY_SAMPLES draws, recorded as ``limited_to``."""
    if int(max_points) < 2:
        raise ConfigError(f"the information decomposition needs at least 2 test points, got {max_points}")
    if int(num_samples) < 1:
        raise ConfigError(f"the information decomposition needs at least 1 draw per point, got {num_samples}")
    x = x[:int(max_points)]
    y = None if y is None else y[:int(max_points)]
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        if seed is not None:
            torch.manual_seed(int(seed))
        reason = information_reason(model, guide, x, y)
        if reason is not None:
            return None, reason
        limited = None
        if limit_costly and not _cheap_mixture(guide, x[:2], None if y is None else y[:2]):
            if x.shape[0] > COSTLY_POINTS or int(num_samples) > COSTLY_SAMPLES:
                limited = (f"{min(x.shape[0], COSTLY_POINTS)} points x {min(int(num_samples), COSTLY_SAMPLES)} "
                           f"draws, not {x.shape[0]} x {int(num_samples)}: this guide's q(z|x_m) at another point's "
                           "draw runs its networks per pair (N^2 K evaluations)")
            x = x[:COSTLY_POINTS]
            y = None if y is None else y[:COSTLY_POINTS]
            num_samples = min(int(num_samples), COSTLY_SAMPLES)
        t0 = time.perf_counter()
        samples = information_samples(model, guide, x, y, num_samples, batch_size)
        part = summarize_information(samples, time.perf_counter() - t0)
        if limited:
            part["limited_to"] = limited
        return part, None


def _cheap_mixture(guide, x, y) -> bool:
    """Whether q(z|x_m) at any draw is one cheap evaluation: a single latent site whose guide density is a product
    of univariate ones (a diagonal Gaussian), so the N x N x K mixture is elementwise work."""
    trace = poutine.trace(guide).get_trace(x, y)
    sites = [site for _, site in _latent_nodes(trace)]
    return len(sites) == 1 and _univariate(sites[0]["fn"]) is not None
