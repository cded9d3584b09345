"""The model contract shared by every generative model of the zoo (see DESIGN.md, "Contracts").

A model is an ``nn.Module`` whose ``forward(x, y=None)`` is the Pyro model of a mini-batch x of shape
(B, D): the data points live in ``pyro.plate("data", B)`` at dim -1, the observed site is ``"x"`` (``"y"`` for labels),
every within-point dimension is an event dimension, so each site's log-density has one value per data point and losses
are nats per data point once divided by B. Besides the Pyro model it declares

* :meth:`latent_sites` -- name, size, support and guide dependencies of each latent, so a guide can be built for it;
* :meth:`make_encoder` -- the feature extractor h(x) that an amortized guide puts in front of its heads (an MLP for
  vector models, a conv net for image models), so swapping the guide never changes the model;
* :meth:`sample` / :meth:`decode_mean` -- what reports need to draw samples and reconstructions.
"""
import functools
from typing import List, Optional, Tuple

import pyro
import pyro.poutine as poutine
import torch
from torch import nn

from zoo.errors import ConfigError
from zoo.latents import LatentSite
from zoo.registry import Registry

MODELS = Registry("model")


class ZooModel(nn.Module):
    """Base of every model. A plain ``nn.Module`` rather than a ``PyroModule``: the zoo trains parameters with a torch
    optimizer and never through Pyro's param store, and ``PyroModule.__getattr__`` registers every submodule with that
    store on each access (0.4 ms of a 2 ms VAE step measured here). Pyro's ELBOs accept any ``nn.Module``."""

    #: plates a model nests (the data plate); a particle plate for vectorised importance sampling goes left of them
    max_plate_nesting = 1
    #: the likelihood's data requirement is checked by ``check_data``; models that take labels set this
    uses_labels = False

    def __init__(self, data_dim: int, image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__()
        if data_dim < 1:
            raise ConfigError(f"data dimension must be positive, got {data_dim}")
        self.data_dim = data_dim
        self.image_shape = tuple(image_shape) if image_shape else None

    def latent_sites(self) -> List[LatentSite]:
        raise NotImplementedError

    def make_encoder(self) -> nn.Module:
        """A fresh feature extractor x (..., D) -> h (..., F) with attribute ``out_features`` = F."""
        raise NotImplementedError

    def check_data(self, x: torch.Tensor, where: str = "the data"):
        """Raise :class:`zoo.errors.DataError` when x does not suit the model (shape, support of the likelihood)."""
        from zoo.errors import DataError

        if x.dim() != 2 or x.shape[1] != self.data_dim:
            raise DataError(f"{where} has shape {tuple(x.shape)}, but the model expects (N, {self.data_dim})")
        self.likelihood.check_data(x, where)

    @torch.no_grad()
    def decode_mean(self, trace_sites: dict) -> torch.Tensor:
        """E[x | latents] from a model trace's observed site (used for samples and reconstructions)."""
        fn = trace_sites["x"]["fn"]
        return fn.mean

    @torch.no_grad()
    def sample(self, n: int, like: torch.Tensor, mean: bool = True) -> torch.Tensor:
        """n draws from the model: z ~ p(z), then E[x|z] (``mean=True``) or x ~ p(x|z). ``like`` fixes device/dtype.

        The model is traced on a placeholder x so that its latents come from the prior; the observed site's
        distribution is the decoder's p(x|z)."""
        placeholder = like.new_zeros(n, self.data_dim)
        trace = poutine.trace(poutine.block(self, hide_types=["param"])).get_trace(placeholder)
        fn = trace.nodes["x"]["fn"]
        return fn.mean if mean else fn.sample()

    def extra_repr(self):
        return f"data_dim={self.data_dim}"


def data_plate(x: torch.Tensor):
    """The data plate every model and guide uses: one slot per data point of the mini-batch, at dim -1.

    The plate's indices ``arange(n)`` are built once per (n, device) and handed to it with the device, instead of
    Pyro creating them and probing the default device at every entry (13 -> 6 microseconds a plate)."""
    return pyro.plate("data", x.shape[0], dim=-1, subsample=_plate_indices(x.shape[0], x.device), device=x.device)


@functools.lru_cache(maxsize=8)
def _plate_indices(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n, device=device)
