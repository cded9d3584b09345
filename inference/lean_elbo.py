"""A lean ELBO for fully reparameterised model/guide pairs, still driven by the Pyro model and guide.

Pyro's ``TraceMeanField_ELBO.differentiable_loss`` computes, per step, the guide's score-function parts (log q of every
site even where the analytic KL replaces it), and converts the loss to Python floats twice (``torch_item``: a
host-device synchronisation on a GPU) plus a NaN check. For a guide whose every latent site is reparameterised
(``has_rsample``) and not enumerated, the surrogate loss equals the loss itself, so all of that can go:

    -ELBO(x) = -sum_{observed s} log p(x_s | ...) + sum_{latent s} KL(q_s || p_s)            (analytic, where registered)
                                                  + sum_{latent s} [log q_s(z_s) - log p_s(z_s)]   (otherwise, MC)

with each term multiplied by its site's scale and mask exactly as Pyro does (``scale_and_mask``). One guide trace, one
replayed model trace, nothing else; ``tests/inference/test_lean_elbo.py`` proves it equal to ``TraceMeanField_ELBO``
and ``Trace_ELBO`` (loss and gradients) under the same seed. Pairs it cannot handle (a non-reparameterised or
enumerated guide site) are reported by :func:`lean_supported` so the caller falls back to Pyro's ELBO.
"""
import sys

import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine.replay_messenger import ReplayMessenger
from pyro.poutine.trace_messenger import TraceMessenger
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence


def lean_supported(guide_trace) -> bool:
    for site in guide_trace.nodes.values():
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site):
            if not getattr(site["fn"], "has_rsample", False) or site["infer"].get("enumerate"):
                return False
    return True


def _sum(site, value):
    value = scale_and_mask(value, site["scale"], site["mask"])
    return value.sum() if torch.is_tensor(value) else value


def run_traced(fn, *args, replay=None, **kwargs):
    """The trace of ``fn(*args, **kwargs)`` (replayed against the trace ``replay`` when given): the sample and param
    sites of ``poutine.trace(poutine.replay(fn, trace=replay)).get_trace(*args, **kwargs)``, the same messengers in
    the same order, without the per-call handler objects, the ``_INPUT``/``_RETURN`` nodes and the final copy of the
    trace (a fixed per-step cost the lean loss does not need). A ``ValueError``/``RuntimeError`` is re-raised with
    the sites' shapes appended, as Pyro's trace handler does."""
    tracer = TraceMessenger()
    with tracer:
        try:
            if replay is None:
                fn(*args, **kwargs)
            else:
                with ReplayMessenger(trace=replay):
                    fn(*args, **kwargs)
        except (ValueError, RuntimeError) as e:
            exc_type, exc_value, traceback = sys.exc_info()
            raise exc_type(f"{exc_value}\n{tracer.trace.format_shapes()}").with_traceback(traceback) from e
    return tracer.trace


def lean_elbo_loss(model, guide, *args, analytic_kl: bool = True, guide_trace=None, checked: bool = False,
                   **kwargs) -> torch.Tensor:
    """-ELBO (one particle) summed over the batch; raises ``ValueError`` for pairs that need Pyro's ELBO
    (``checked=True``: the caller has already found ``guide_trace`` supported by :func:`lean_supported`)."""
    if guide_trace is None:
        guide_trace = run_traced(guide, *args, **kwargs)
    if not checked and not lean_supported(guide_trace):
        raise ValueError("the lean ELBO needs a fully reparameterised, non-enumerated guide")
    model_trace = run_traced(model, *args, replay=guide_trace, **kwargs)
    loss = 0.0
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        if site["is_observed"]:
            loss = loss - _sum(site, site["fn"].log_prob(site["value"]))
            continue
        guide_site = guide_trace.nodes[name]
        if analytic_kl:
            try:
                kl = kl_divergence(guide_site["fn"], site["fn"])
            except NotImplementedError:
                kl = None
            if kl is not None:
                loss = loss + _sum(guide_site, kl)
                continue
        loss = loss + _sum(guide_site, guide_site["fn"].log_prob(guide_site["value"])) \
            - _sum(site, site["fn"].log_prob(site["value"]))
    for name, guide_site in guide_trace.nodes.items():  # auxiliary guide sites (absent from the model)
        if (guide_site["type"] == "sample" and not guide_site["is_observed"] and name not in model_trace.nodes
                and not site_is_subsample(guide_site)):
            loss = loss + _sum(guide_site, guide_site["fn"].log_prob(guide_site["value"]))
    return loss
