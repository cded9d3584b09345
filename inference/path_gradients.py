r"""Path-derivative log q for any reparameterised guide, on Pyro traces: the part of the gradient of log q_phi(z)
that flows through the sample z, without the score term (Roeder, Wu & Duvenaud 2017; Tucker, Lawson, Gu & Maddison
2019). Shared by ``stl`` (inference/stl.py) and ``iwae-dreg:K`` (inference/dreg.py).

With z = z(phi, eps) reparameterised, the total derivative of log q splits as

    d/dphi log q_phi(z(phi))  =  grad_z log q_phi(z) . dz/dphi   +   d/dphi log q_phi(z)|_{z fixed}
                                 (path term)                          (score term, E_q[score] = 0)

and the estimators want the path term only: "log q evaluated with the guide's parameters stop-gradiented". This
module returns, beside the ordinary terms of :func:`inference.importance.weight_terms`, a zero-valued ``score``
surrogate (shape (K, B)) whose gradient is the score term, so that ``log_q - score`` has the value log q and the
gradient of the path term alone, for every guide site:

* a site whose q is not a ``TransformedDistribution`` (diagonal Gaussian, von Mises-Fisher, a user's Normal, ...):
  score = log q_theta(stop z), the site's distribution scored at its own sample held fixed;
* a flow site, q = base pushed through transforms f_theta (the zoo's flow guides; a latent with a constrained
  support, whose bijection is appended): planar, radial and Sylvester flows have no inverse, so log q_theta cannot be
  evaluated at a fixed z for other theta. With eps the base sample (read from the transforms' one-entry cache, which
  is how the guide scores its own sample anyway), h(eps, theta) = log q_theta(f_theta(eps)) and J = df/deps, the
  implicit function theorem gives grad_z log q = J^{-T} grad_eps h (J^{-T} -> J (J^T J)^{-1} where f maps onto a
  manifold, e.g. a simplex), and the score at fixed z is the gradient of

      score = h(stop eps, theta) - stop(grad_z log q) . f_theta(stop eps)

  (d/dtheta: dh/dtheta + grad_eps h . deps/dtheta with deps/dtheta = -J^{-1} df/dtheta). Every flow parameter
  (the hypernetwork's outputs, the base's mean and scale) is thereby held fixed while z moves: the same gradient as
  scoring z under a copy of the flow with detached parameters, without needing its inverse. J costs one backward pass
  per latent dimension, through the flow only.

Distribution parameters theta are functions of phi *and* of the latents a site depends on (hierarchical guides:
q(z2 | z1, x)). Only phi is to be held fixed: the dependence of q(z2 | z1) on z1 belongs to the path term. For a
guide with more than one latent site the guide is therefore run once more, replaying the detached samples, and the
score is taken from that run's distributions (theta = theta(phi, stop z_parents)); a single-site guide's own
distributions are used as they are.

A guide with a site that is not reparameterised (a discrete latent, a sampler without ``rsample``) is refused in
one line (:class:`zoo.errors.ConfigError`): these estimators are about the reparameterisation gradient.
"""
from typing import NamedTuple, Optional

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import site_is_subsample
from torch.distributions import TransformedDistribution

from inference.importance import _site_log_prob, model_log_terms, scale_and_mask, sum_to_points
from zoo.errors import ConfigError


class PathTerms(NamedTuple):
    log_obs: torch.Tensor  # (K, B) observed sites' log p
    log_prior: torch.Tensor  # (K, B) latent sites' log p under the model
    log_q: torch.Tensor  # (K, B) log q (the ordinary total-derivative graph)
    score: torch.Tensor  # (K, B) zero-valued; its gradient is the score term of log q (zero tensor under no_grad)
    latents: dict

    @property
    def log_w(self):
        return self.log_obs + self.log_prior - self.log_q


class GradScale:
    """Holds the (K, B) weights by which :func:`path_terms` scales the gradient flowing from the model back into the
    guide's samples (DReG's second power of the normalised weights); set them after the forward pass."""

    weights: Optional[torch.Tensor] = None


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by ``box.weights`` (K, B), broadcast over the
    value's trailing dimensions."""

    @staticmethod
    def forward(ctx, z, box):
        ctx.box = box
        return z.clone()

    @staticmethod
    def backward(ctx, grad):
        w = ctx.box.weights
        if w is None:
            return grad, None
        return grad * w.reshape(w.shape + (1,) * (grad.dim() - w.dim())).to(grad.dtype), None


def _latent(site) -> bool:
    return site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)


def guide_name(guide) -> str:
    return getattr(guide, "_name", None) or type(guide).__name__


def check_reparameterized(guide_trace, guide, objective: str):
    for name, site in guide_trace.nodes.items():
        if not _latent(site):
            continue
        fn = site["fn"]
        if site["infer"].get("enumerate") or not getattr(fn, "has_rsample", False):
            what = "enumerated" if site["infer"].get("enumerate") else f"{type(fn).__name__}, not reparameterised"
            raise ConfigError(
                f"objective {objective} needs a fully reparameterised guide, but guide {guide_name(guide)} samples "
                f"{name!r} from {what}; use iwae:K or elbo with this guide (iwae-enum:K or enum for enumerated "
                f"discrete latents)")


def _flow_transforms(fn):
    """All the transforms from the base sample to ``fn``'s value, or None when ``fn`` is no transformed
    distribution: the ``TransformedDistribution`` under ``fn``'s wrappers (Independent, masked, expanded), with those
    of transformed distributions nested in its base prepended (a flow guide's q(u|x) pushed through the bijection to
    a constrained support is a ``TransformedDistribution`` of one)."""
    d = fn
    while not isinstance(d, TransformedDistribution):
        d = getattr(d, "base_dist", None)
        if d is None:
            return None
    transforms = []
    while d is not None:
        if isinstance(d, TransformedDistribution):
            transforms = list(d.transforms) + transforms
        d = getattr(d, "base_dist", None)
    return transforms


def _base_sample(transforms, value, site_name):
    """The base sample eps with f(eps) = value, by walking the transforms back (their cache returns the very tensor
    that produced ``value``; an invertible transform without a cache inverts)."""
    y = value
    try:
        for t in reversed(transforms):
            y = t.inv(y)
    except (NotImplementedError, KeyError) as e:
        raise ConfigError(f"the flow of guide site {site_name!r} can neither invert its sample nor look it up in a "
                          f"transform cache ({type(e).__name__}), so its path-derivative log q cannot be formed; "
                          f"build its transforms with cache_size=1")
    return y.detach()


def _flow_score(fn, transforms, eps, z_event_dims: int) -> torch.Tensor:
    """h(eps, theta) - stop(grad_z log q) . f_theta(eps): its theta-gradient is the score at the fixed z = f(eps)."""
    with torch.enable_grad():
        e0 = eps.detach().requires_grad_(True)
        z = e0
        for t in transforms:
            z = t(z)
        h = fn.log_prob(z)  # the transforms' cache hands each step its own input back: h as a function of e0
        batch = z.shape[:z.dim() - z_event_dims]
        zf = z.reshape(batch + (-1,))
        d_z, d_e = zf.shape[-1], e0[(0,) * len(batch)].numel()
        grad_e = torch.autograd.grad(h.sum(), e0, retain_graph=True, allow_unused=True)[0]
        grad_e = torch.zeros_like(e0) if grad_e is None else grad_e
        rows = []
        for i in range(d_z):
            r = torch.autograd.grad(zf[..., i].sum(), e0, retain_graph=True, allow_unused=True)[0]
            rows.append(torch.zeros_like(e0) if r is None else r)
        jac = torch.stack([r.reshape(batch + (d_e,)) for r in rows], dim=-2).double()  # (..., d_z, d_e)
        ge = grad_e.reshape(batch + (d_e, 1)).double()
        jt = jac.transpose(-1, -2)
        if d_z == d_e:
            g = torch.linalg.solve(jt, ge)
        else:  # f maps onto a d_e-dimensional manifold of R^{d_z}: the tangent component, J (J^T J)^{-1} grad_eps h
            g = jac @ torch.linalg.solve(jt @ jac, ge)
        g = g.squeeze(-1).to(z.dtype).reshape(z.shape).detach()
    return h - (g * z).reshape(batch + (-1,)).sum(-1)


def path_terms(model, guide, x, y=None, num_particles: int = 1, max_plate_nesting=None, objective: str = "",
               grad_scale: Optional[GradScale] = None) -> PathTerms:
    """The terms of :func:`inference.importance.weight_terms` plus the score surrogate (see the module docstring).

    ``grad_scale``: the model receives the guide's samples through an identity whose backward multiplies the gradient
    by ``grad_scale.weights`` (set by the caller once the weights are known)."""
    if max_plate_nesting is None:
        max_plate_nesting = model.max_plate_nesting
    K, B = num_particles, x.shape[0]
    shape = (K, B)
    guide_nesting = getattr(guide, "max_plate_nesting", 1)
    with pyro.plate("particles", K, dim=-(guide_nesting + 1)):
        guide_trace = poutine.trace(guide).get_trace(x, y)
    check_reparameterized(guide_trace, guide, objective)
    grad = torch.is_grad_enabled()
    zeros = x.new_zeros(shape)
    log_q, latents, eps = zeros, {}, {}
    sites = [(n, s) for n, s in guide_trace.nodes.items() if _latent(s)]
    for name, site in sites:
        log_q = log_q + _site_log_prob(site, shape)
        latents[name] = site["value"]
        transforms = _flow_transforms(site["fn"])
        if grad and transforms is not None:
            eps[name] = _base_sample(transforms, site["value"], name)  # before anything else runs the transforms
    replay_trace = guide_trace
    if grad_scale is not None and grad:
        replay_trace = _with_values(guide_trace, {n: _scale_sample(s["value"], grad_scale, shape, n)
                                                  for n, s in sites})
    with pyro.plate("particles", K, dim=-(max_plate_nesting + 1)):
        model_trace = poutine.trace(poutine.replay(model, trace=replay_trace)).get_trace(x, y)
    log_obs, log_prior = model_log_terms(model_trace, zeros)
    score = zeros
    if grad:
        fixed = guide_trace
        if len(sites) > 1:  # theta = theta(phi, stop z_parents): the guide again, on the detached samples
            detached = _with_values(guide_trace, {n: s["value"].detach() for n, s in sites})
            with pyro.plate("particles", K, dim=-(guide_nesting + 1)):
                fixed = poutine.trace(poutine.replay(guide, trace=detached)).get_trace(x, y)
        for name, site in sites:
            again = fixed.nodes[name]
            fn, value = again["fn"], site["value"].detach()
            if name in eps:
                transforms = _flow_transforms(fn)
                if transforms is None:
                    raise ConfigError(f"guide {guide_name(guide)} samples {name!r} from a flow once and from "
                                      f"{type(fn).__name__} when run again; its path-derivative cannot be formed")
                lp = _flow_score(fn, transforms, eps[name], len(fn.event_shape))
            else:
                lp = fn.log_prob(value)
            lp = sum_to_points(scale_and_mask(again, lp), shape)
            score = score + (lp - lp.detach())
    return PathTerms(log_obs, log_prior, log_q, score, latents)


def _scale_sample(value, box, shape, name):
    if tuple(value.shape[:2]) != tuple(shape):
        raise ConfigError(f"guide site {name!r} has value shape {tuple(value.shape)}, not (particles, points, ...) = "
                          f"{tuple(shape)} + ...; the doubly reparameterised gradient needs one weight per sample")
    return _ScaleGradient.apply(value, box)


def _with_values(trace, values) -> Trace:
    """A copy of ``trace`` (for replay) whose listed sample sites hold other values."""
    out = Trace()
    for name, site in trace.nodes.items():
        if name in values:
            site = dict(site, value=values[name])
        out.add_node(name, **site)
    return out
