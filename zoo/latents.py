"""What a model says about its latent variables, so that any guide can be built for it."""
from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class LatentSite:
    """One latent sample site of a model.

    :param name: the Pyro site name (``"z"``, ``"z1"``, ...).
    :param dim: the event size; the site's value has shape (..., B, dim) (or (..., B) for a categorical site).
    :param support: ``"real"`` (R^dim), ``"sphere"`` (the unit sphere S^{dim-1}) or ``"categorical"``.
    :param depends_on: the other latent sites that the *guide's* distribution of this site is conditioned on besides x,
        e.g. ``("z2",)`` for q(z1 | x, z2) of a two-layer hierarchy. Sites are listed in the order a guide samples them.
    :param num_classes: the number of categories of a categorical site.
    :param observed_with: for a site that is observed when the data carry it (the label ``y`` of a semi-supervised model),
        the name of the data field; the guide samples it only where it is missing.
    """

    name: str
    dim: int
    support: str = "real"
    depends_on: Tuple[str, ...] = ()
    num_classes: Optional[int] = None
    observed_with: Optional[str] = None
