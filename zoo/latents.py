"""What a model says about its latent variables, so that any guide can be built for it.

A model may declare its latents by hand (``latent_sites()``), or let the zoo find them by tracing it once
(:mod:`zoo.tracing`): both give a list of :class:`LatentSite`.
"""
import math
from dataclasses import dataclass
from typing import Any, Optional, Tuple


@dataclass(frozen=True)
class LatentSite:
    """One latent sample site of a model.

    :param name: the Pyro site name (``"z"``, ``"z1"``, ...).
    :param dim: the size of the unconstrained vector a guide samples per data point; the site's value has shape
        (..., B, dim) (or (..., B) for a categorical site) unless ``shape`` or ``constraint`` say otherwise.
    :param support: ``"real"`` (R^dim, or any continuous support reached through ``constraint``'s bijection),
        ``"sphere"`` (the unit sphere S^{dim-1}), ``"categorical"`` or ``"discrete"`` (a discrete site no amortized
        guide can sample).
    :param depends_on: the other latent sites that the *guide's* distribution of this site is conditioned on besides x,
        e.g. ``("z2",)`` for q(z1 | x, z2) of a two-layer hierarchy. Sites are listed in the order a guide samples them.
    :param num_classes: the number of categories of a categorical site.
    :param observed_with: for a site that is observed when the data carry it (the label ``y`` of a semi-supervised model),
        the name of the data field; the guide samples it only where it is missing.
    :param shape: the value's shape per data point in the model (the dimensions right of the data plate: nested
        plates' and event dimensions); ``None`` means ``(dim,)``.
    :param constraint: the model site's support as a ``torch.distributions.constraints`` object; a guide samples
        u in R^dim and hands the model ``biject_to(constraint)(u)`` (positive, unit-interval, simplex, ... latents).
        ``None`` means real.
    """

    name: str
    dim: int
    support: str = "real"
    depends_on: Tuple[str, ...] = ()
    num_classes: Optional[int] = None
    observed_with: Optional[str] = None
    shape: Optional[Tuple[int, ...]] = None
    constraint: Any = None

    @property
    def value_shape(self) -> Tuple[int, ...]:
        """The value's shape per data point, as the model sees it."""
        return tuple(self.shape) if self.shape is not None else (self.dim,)

    @property
    def value_size(self) -> int:
        """Entries of the value per data point (what a guide concatenates when another site depends on this one)."""
        return int(math.prod(self.value_shape))
