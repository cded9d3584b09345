"""Find a Pyro model's latent sites by tracing it once, and check the contract the zoo's guides and bounds rely on.

Any Pyro program ``model(x, y=None)`` can be paired with the zoo's guides when its per-point sites live in
``pyro.plate("data", ...)``. One run of the model on a mini-batch (``poutine.trace``) gives, for every latent
(unobserved, not enumerated) sample site, in the order the model samples them:

* its value's shape per data point: the dimensions right of the data plate's, i.e. nested plates' and event dims,
  so a latent in ``plate("data", dim=-2)`` and ``plate("pixels", D, dim=-1)`` has per-point shape (D,);
* its support ``fn.support``: a guide samples u in R^n and hands the model ``biject_to(support)(u)``, with
  n = the size of ``biject_to(support).inverse_shape(shape)`` (a simplex of K entries has n = K - 1);
* the model's plate nesting (``max_plate_nesting``), so a particle plate can go left of every plate.

Each latent is conditioned in the guide on x and on the latents sampled before it (the model's order), which for
a hierarchy z1 -> z2 -> x gives q(z1 | x) q(z2 | x, z1).

The checks (:class:`~zoo.errors.ContractError`, one line naming the site and the fix): a latent outside the data plate
(no per-point bound), a plate nested left of the data plate (a point's values would not be trailing dimensions), a
discrete latent that is not enumerated, and no observed site ``"x"``.
"""
import math
from dataclasses import dataclass
from typing import List, Optional

import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch.distributions import biject_to, constraints

from zoo.errors import ContractError
from zoo.latents import LatentSite

DATA_PLATE = "data"
OBSERVED = "x"


@dataclass
class ModelStructure:
    """What one trace of a model says about it."""

    latents: List[LatentSite]
    observed: List[str]
    max_plate_nesting: int
    data_dim: int  # the plate dim of "data" (negative), as the model chose it


def _base_constraint(c):
    while isinstance(c, constraints.independent):
        c = c.base_constraint
    return c


def is_real(c) -> bool:
    return c is None or _base_constraint(c) is constraints.real


def unconstrained_shape(constraint, shape) -> tuple:
    """The shape of the unconstrained vector u with ``biject_to(constraint)(u)`` of ``shape``."""
    if is_real(constraint):
        return tuple(shape)
    return tuple(biject_to(constraint).inverse_shape(torch.Size(shape)))


def _data_frame(site):
    for frame in site["cond_indep_stack"]:
        if frame.name == DATA_PLATE:
            return frame
    return None


def trace_structure(model, x: torch.Tensor, y: Optional[torch.Tensor] = None, who: str = "model") -> ModelStructure:
    """Trace ``model(x, y)`` once (parameters hidden from any param store) and read its :class:`ModelStructure`."""
    try:
        with torch.no_grad():
            trace = poutine.trace(poutine.block(model, hide_types=["param"])).get_trace(x, y)
    except ContractError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's program failed: one line, with its own words
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ContractError(f"{who} failed when run on a mini-batch of the data (x of shape {tuple(x.shape)}): "
                            f"{type(e).__name__}: {first}")
    latents, observed, nesting, earlier = [], [], 0, []
    data_dims = set()
    batch = x.shape[0]
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        dims = [f.dim for f in site["cond_indep_stack"] if f.dim is not None]
        if dims:
            nesting = max(nesting, -min(dims))
        if site["is_observed"]:
            observed.append(name)
            continue
        if site["infer"].get("enumerate") or site["infer"].get("is_auxiliary"):
            continue  # summed out by the model's own enumeration, or a helper site
        frame = _data_frame(site)
        if frame is None:
            raise ContractError(
                f"{who} site {name!r} is a latent outside pyro.plate({DATA_PLATE!r}): the zoo's guides and per-point "
                f"bounds (iwae, the importance-sampled log p(x)) need every latent inside it; sample it inside the "
                f"data plate, or make it a parameter with pyro.param")
        data_dims.add(frame.dim)
        left = [f for f in site["cond_indep_stack"]
                if f.dim is not None and f.name != DATA_PLATE and f.dim < frame.dim]
        if left:
            raise ContractError(
                f"{who} site {name!r} is in plate {left[0].name!r} at dim {left[0].dim}, left of the data plate at dim "
                f"{frame.dim}, so a point's values are not its trailing dimensions; give the data plate the leftmost "
                f"dim, e.g. pyro.plate({DATA_PLATE!r}, N, dim={min(f.dim for f in left) - 1})")
        fn, value = site["fn"], site["value"]
        event = len(fn.event_shape)
        pos = value.dim() - event + frame.dim
        if pos < 0 or value.shape[pos] != batch or any(s != 1 for s in value.shape[:pos]):
            raise ContractError(
                f"{who} site {name!r} has value shape {tuple(value.shape)}, not one entry per data point along the "
                f"data plate (batch {batch}); sample it with a distribution whose batch shape fits the plates")
        shape = tuple(value.shape[pos + 1:])
        support = fn.support
        if support.is_discrete:
            raise ContractError(
                f"{who} site {name!r} is discrete ({type(_base_constraint(support)).__name__}) and not enumerated: "
                f"the zoo's amortized guides sample continuous latents; sum it out in the model with "
                f"infer={{'enumerate': 'parallel'}} and --objective enum, or make it continuous")
        try:
            u_shape = unconstrained_shape(support, shape)
        except NotImplementedError:
            raise ContractError(
                f"{who} site {name!r} has support {support}, which no bijection from R^n reaches; the zoo's guides "
                f"need a support that torch.distributions.biject_to knows (real, positive, interval, simplex, ...)")
        latents.append(LatentSite(name, int(math.prod(u_shape)), "real", depends_on=tuple(earlier), shape=shape,
                                  constraint=None if is_real(support) else support))
        earlier.append(name)
    if OBSERVED not in observed:
        found = f" (its observed sites: {', '.join(observed)})" if observed else ""
        raise ContractError(
            f"{who} has no observed site {OBSERVED!r}{found}: write pyro.sample({OBSERVED!r}, <p(x | ...)>, obs=x) "
            f"inside pyro.plate({DATA_PLATE!r}, ...) so the zoo can score, sample and reconstruct the data")
    return ModelStructure(latents, observed, max(nesting, 1), max(data_dims) if data_dims else -1)
