"""Guides for the sequence models (zoo/sequences.py): q(z_1..z_T | x) = prod_t q(z_t | z_{t-1}, ...), sampled forward in
time, one site per step, each masked by the step's mask as in the model (padding never scored).

* ``filtering`` -- q(z_t | z_{t-1}, x_<=t): a GRU reads x_1..x_t forwards; an MLP on [its state g_t, z_{t-1}] emits the
  Gaussian's (loc, scale). Any sequence model (``lgssm``, ``vrnn``).
* ``smoothing`` -- q(z_t | z_{t-1}, x_t..x_L): a GRU reads each sequence backwards from its last step (its own length,
  so padding is never read) and the combiner of Krishnan, Shalit & Sontag 2017 (DMM, "ST-R")
  h = (tanh(W z_{t-1} + b) + g_t) / 2 emits (loc, scale). Any sequence model.
* ``vrnn`` -- the paper's q(z_t | x_t, h_{t-1}) of Chung et al. 2015: an MLP on [phi_x(x_t), h_{t-1}] with the model's
  own feature extractors and recurrence (a plain reference to the model, so its weights are stored once, in the
  model); ``vrnn`` models only.
"""
from typing import Optional

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch import nn

from zoo.errors import ContractError
from zoo.model import data_plate
from zoo.networks.mlp import MLP
from zoo.vrnn import VRNN, gaussian_params

from guides.base import GUIDES


class SequenceGuide(nn.Module):
    """Shared part: the model's per-step sites and shapes; subclasses give :meth:`contexts` and :meth:`head`."""

    def __init__(self, model):
        super().__init__()
        if not getattr(model, "is_sequence_model", False):
            name = getattr(model, "display_name", lambda: type(model).__name__)()
            raise ContractError(f"guide {self.guide_name} is for sequence models (lgssm, vrnn), not model {name}; "
                                f"choose a guide such as diagonal")
        self.step_dim, self.latent_dim = model.step_dim, model.latent_dim
        self.site_name = model.site_name
        self.state_dim = int((getattr(model, "hidden", None) or (64,))[0])

    def sample_steps(self, x, context_of):
        """Sample z_1..z_T forwards; ``context_of(t, z_prev)`` gives (loc, scale) of q(z_t | ...)."""
        mask = torch.isfinite(x.reshape(*x.shape[:-1], -1, self.step_dim)).all(-1)
        values = {}
        with data_plate(x):
            z = None
            for t in pyro.markov(range(mask.shape[-1])):
                loc, scale = context_of(t, z)
                with poutine.mask(mask=mask[..., t]):
                    z = pyro.sample(self.site_name(t), dist.Normal(loc, scale, validate_args=False).to_event(1))
                values[self.site_name(t)] = z
        return values


def _cat(a: torch.Tensor, b: Optional[torch.Tensor], width: int) -> torch.Tensor:
    """[a, b] broadcast over leading dimensions (b = None: zeros of ``width``, the z_0 of the first step)."""
    if b is None:
        return torch.cat([a, a.new_zeros(a.shape[:-1] + (width,))], -1)
    shape = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    return torch.cat([a.expand(shape + a.shape[-1:]), b.expand(shape + b.shape[-1:])], -1)


@GUIDES.register("filtering", paper="Chung et al. 2015; Krishnan, Shalit & Sontag 2017 (the forward-RNN guide)",
                 summary="sequences: q(z_t | z_{t-1}, x_<=t), a forward GRU over x and an MLP on [g_t, z_{t-1}]",
                 supports=("real",), only_for="sequence models", sequences=True)
class FilteringGuide(SequenceGuide):
    guide_name = "filtering"

    def __init__(self, model):
        super().__init__(model)
        H, k = self.state_dim, self.latent_dim
        self.rnn = nn.GRU(self.step_dim, H, batch_first=True)
        self.head = MLP(H + k, (H,), 2 * k)

    def forward(self, x, y=None):
        from zoo.sequences import split_steps

        xs, _ = split_steps(x, self.step_dim)
        g, _ = self.rnn(xs)  # g_t: the state after x_1..x_t
        return self.sample_steps(x, lambda t, z: gaussian_params(self.head(_cat(g[..., t, :], z, self.latent_dim))))


def reverse_within_lengths(xs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each sequence's steps 1..L in reverse order (L its length), the padding left after them; its own inverse."""
    T = xs.shape[-2]
    steps = torch.arange(T, device=xs.device)
    lengths = mask.sum(-1, keepdim=True)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (B, T)
    return torch.gather(xs, -2, index.unsqueeze(-1).expand(xs.shape))


@GUIDES.register("smoothing", paper="Krishnan, Shalit & Sontag 2017 (DMM, ST-R combiner)",
                 summary="sequences: q(z_t | z_{t-1}, x_t..x_L), a GRU reading each sequence backwards and the DMM "
                         "combiner (tanh(W z_{t-1}) + g_t)/2",
                 supports=("real",), only_for="sequence models", sequences=True)
class SmoothingGuide(SequenceGuide):
    guide_name = "smoothing"

    def __init__(self, model):
        super().__init__(model)
        H, k = self.state_dim, self.latent_dim
        self.rnn = nn.GRU(self.step_dim, H, batch_first=True)
        self.z_to_hidden = nn.Linear(k, H)
        self.z_0 = nn.Parameter(torch.zeros(k))  # the DMM's learned z_0
        self.head = nn.Linear(H, 2 * k)

    def forward(self, x, y=None):
        from zoo.sequences import split_steps

        xs, mask = split_steps(x, self.step_dim)
        backwards, _ = self.rnn(reverse_within_lengths(xs, mask))
        g = reverse_within_lengths(backwards, mask)  # g_t: the state after x_L, ..., x_t

        def context(t, z):
            z = self.z_0 if z is None else z
            hz = torch.tanh(self.z_to_hidden(z))
            shape = torch.broadcast_shapes(hz.shape[:-1], g.shape[:-2])
            return gaussian_params(self.head(0.5 * (hz.expand(shape + hz.shape[-1:]) + g[..., t, :].expand(
                shape + g.shape[-1:]))))

        return self.sample_steps(x, context)


@GUIDES.register("vrnn", paper="Chung et al. 2015", summary="VRNN's q(z_t | x_t, h_{t-1}) on the model's own "
                 "features and recurrence (vrnn models)", supports=("real",), only_for="vrnn", sequences=True)
class VRNNGuide(SequenceGuide):
    guide_name = "vrnn"

    def __init__(self, model):
        super().__init__(model)
        if not isinstance(model, VRNN):
            raise ContractError(f"guide vrnn reads the recurrent state h_(t-1) of a vrnn model, and "
                                f"{model.display_name()} has none; use filtering or smoothing")
        H, k = model.state_dim, self.latent_dim
        self.encoder = MLP(2 * H, (H,), 2 * k, act=model.activation)
        self.__dict__["_model"] = model  # a plain reference: the model's weights live (and are trained) in the model

    def forward(self, x, y=None):
        m = self._model
        xs, _ = m.split(x)
        fx = m.phi_x(xs)
        state = {"h": m.initial_state(x.shape[0], x)}

        def context(t, z):
            if z is not None:  # the recurrence on the previous step's sampled z
                state["h"] = m.step(state["h"], fx[..., t - 1, :], m.phi_z(z))
            h = state["h"]
            return gaussian_params(self.encoder(_cat(fx[..., t, :], h, 0)))

        return self.sample_steps(x, context)
