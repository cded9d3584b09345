"""The sequence contract shared by the zoo's models of sequences (``lgssm``, ``vrnn``) and their guides.

A sequence data set (:mod:`zoo.data.sequences`) holds x of shape (N, T, D) flattened row-major to (N, T*D), with
``sequence_shape = (T, D)``; a point of length L < T has NaN in its steps L+1..T. A mini-batch row therefore carries its
own mask wherever it goes (training, validation, importance sampling, DDP shards): :func:`step_mask` is the per-step
mask m_t = "step t holds finite values", and :func:`split_steps` the (B, T, D) view with the padding set to 0.

A sequence model is a Pyro program over one data plate, with one latent site per step (``z_1`` .. ``z_T``, declared by
:meth:`SequenceModel.latent_sites`, each depending on the previous one so the zoo's amortized guides condition
q(z_t | x, z_{t-1}) on it), sampled under ``pyro.markov`` and ``poutine.mask(mask=m_t)``, and one observed site ``"x"``
whose per-step log-densities are masked by m (``dist.mask``) and summed over steps: padding is never scored, by the
model or (masking their latents the same way) by any guide, and every objective sums sites' masked log-densities.
The models take T from the mini-batch (x of shape (B, T'*D)), so a batch shorter than the data set's T (a sequence on
its own, cut to its length) is scored as the same steps of a padded batch.
"""
from typing import Optional, Tuple

import torch
from torch import nn

from zoo.errors import ConfigError, DataError
from zoo.latents import LatentSite
from zoo.model import ZooModel
from zoo.networks.mlp import MLP


def step_mask(x: torch.Tensor, step_dim: int) -> torch.Tensor:
    """(..., T) bool: True where step t of the flattened sequences x (..., T*D) is data (finite), False on padding."""
    return torch.isfinite(x.reshape(*x.shape[:-1], x.shape[-1] // step_dim, step_dim)).all(-1)


def split_steps(x: torch.Tensor, step_dim: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(steps (..., T, D) with the padding set to 0, mask (..., T)) of flattened sequences x (..., T*D)."""
    xs = x.reshape(*x.shape[:-1], x.shape[-1] // step_dim, step_dim)
    mask = torch.isfinite(xs).all(-1)
    return torch.where(mask.unsqueeze(-1), xs, torch.zeros((), dtype=xs.dtype, device=xs.device)), mask


def lengths_of(x: torch.Tensor, step_dim: int) -> torch.Tensor:
    """int64 (...,) steps of data per sequence (the padding being a suffix)."""
    return step_mask(x, step_dim).sum(-1)


class SequenceEncoder(nn.Module):
    """h(x) for the zoo's amortized guides on sequences: an MLP on [x with padding set to 0, mask]."""

    def __init__(self, num_steps: int, step_dim: int, hidden, act: str = "relu"):
        super().__init__()
        self.step_dim = step_dim
        self.mlp = MLP(num_steps * (step_dim + 1), hidden, None, act=act)
        self.out_features = self.mlp.out_features

    def forward(self, x):
        xs, mask = split_steps(x, self.step_dim)
        return self.mlp(torch.cat([xs.flatten(-2), mask.to(xs.dtype)], dim=-1))


class SequenceModel(ZooModel):
    """Base of the sequence models: the shape checks, the per-step latent sites, the masks, sampling."""

    #: sequence data only (a flat model refuses sequence data in one line, and a sequence model flat data)
    is_sequence_model = True
    #: the latent size per step
    latent_dim = 2

    def __init__(self, data_dim: int, sequence_shape: Optional[Tuple[int, int]] = None,
                 image_shape: Optional[Tuple[int, int, int]] = None):
        name = type(self).__name__.lower()
        if sequence_shape is None:
            raise ConfigError(f"model {name} is for sequences (N, T, D), but the data set holds flat vectors of "
                              f"{data_dim} values; use mnist5k-rows, lgssm-synthetic or an .npz with x of shape "
                              f"(N, T, D) and lengths")
        num_steps, step_dim = (int(s) for s in sequence_shape)
        if num_steps < 1 or step_dim < 1 or num_steps * step_dim != data_dim:
            raise ConfigError(f"model {name}: sequence shape {tuple(sequence_shape)} does not fit data of dimension "
                              f"{data_dim}")
        super().__init__(data_dim, image_shape)
        self.num_steps, self.step_dim = num_steps, step_dim
        self.sequence_shape = (num_steps, step_dim)

    # ------------------------------------------------------------------------------------------- structure
    def site_name(self, t: int) -> str:
        """The latent site of step t (0-based): ``z_{t+1}``."""
        return f"z_{t + 1}"

    def latent_sites(self):
        return [LatentSite(self.site_name(t), self.latent_dim, depends_on=(self.site_name(t - 1),) if t else ())
                for t in range(self.num_steps)]

    def latent_site_steps(self) -> dict:
        """site name -> its step, so that a guide masks the latents of padded steps as the model does."""
        return {self.site_name(t): t for t in range(self.num_steps)}

    def make_encoder(self) -> nn.Module:
        return SequenceEncoder(self.num_steps, self.step_dim, tuple(getattr(self, "hidden", ()) or (128,)) or (128,))

    def split(self, x: torch.Tensor):
        return split_steps(x, self.step_dim)

    # ------------------------------------------------------------------------------------------- data
    def check_data(self, x: torch.Tensor, where: str = "the data"):
        if x.dim() != 2 or x.shape[1] != self.data_dim:
            raise DataError(f"{where} has shape {tuple(x.shape)}, but the model expects sequences flattened to "
                            f"(N, {self.num_steps}*{self.step_dim})")
        check_sequences(x, self.step_dim, where)
        xs, mask = self.split(x)
        self.check_values(xs[mask], where)

    def check_values(self, values: torch.Tensor, where: str):
        """Refuse values (M, D) of the non-padding steps that the observation model cannot score."""
        if not bool(torch.isfinite(values).all()):
            raise DataError(f"{where} contains infinite values")

    # ------------------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, n: int, like: torch.Tensor, mean: bool = True) -> torch.Tensor:
        """n sequences of length T drawn from the model, flattened (n, T*D): each step's x_t is drawn and fed to
        the next (a recurrent model conditions on it); ``mean=True`` returns E[x_t | past] instead of the draws."""
        return self.generate(n, like, mean)

    def generate(self, n: int, like: torch.Tensor, mean: bool) -> torch.Tensor:
        raise NotImplementedError

    def decode_mean(self, trace_sites: dict) -> torch.Tensor:
        fn = trace_sites["x"]["fn"]
        m = fn.mean
        return m.reshape(*m.shape[:-2], -1)

    def extra_repr(self):
        return f"steps={self.num_steps}, step_dim={self.step_dim}, z={self.latent_dim}"


def check_sequences(x: torch.Tensor, step_dim: int, where: str = "the data"):
    """One :class:`DataError` line for sequences that the masks cannot describe: a sequence of length 0, a NaN inside
    a sequence (padding must be a suffix of whole steps)."""
    xs = x.reshape(x.shape[0], -1, step_dim)
    finite = torch.isfinite(xs)
    mask = finite.all(-1)
    partial = finite.any(-1) & ~mask
    if bool(partial.any()):
        raise DataError(f"{where}: {int(partial.any(-1).sum())} sequence(s) have steps with some values missing "
                        f"(NaN); a step is all data or all padding")
    if x.shape[0] and not bool(mask[:, 0].all()):
        raise DataError(f"{where}: {int((~mask[:, 0]).sum())} sequence(s) have length 0; every sequence needs at "
                        f"least one step")
    if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise DataError(f"{where}: some sequences have data after padding (NaN steps); padding must come after the "
                        f"last step of each sequence")
