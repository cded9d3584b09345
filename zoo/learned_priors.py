"""Learned priors p(z), swappable parts of a model like ``standard`` (``--prior mog:K``, ``vamp:K``, ``flow:K``).

Each is an ``nn.Module`` called as ``prior(batch_size, like)`` that returns a Pyro distribution with batch shape
(batch_size,) and event shape (dim,); its ``log_prob`` also takes values with particle dimensions in front,
z of shape (K, B, dim) -> (K, B), as the IWAE objective and the evaluation use them.

* ``mog:K`` -- p(z) = sum_k pi_k N(z; mu_k, diag s_k^2), weights, means and scales learned (Pyro's
  ``MixtureSameFamily``).
* ``vamp:K`` -- the VampPrior of Tomczak & Welling 2018, p(z) = 1/K sum_k q(z | u_k): the mixture of the *guide's*
  variational posteriors at K pseudo-inputs u_k, learned by SGD together with everything else. The pseudo-inputs are
  the prior's only parameters: q(z|.) is the guide's own encoder, reached through a reference that the guide hands
  over when it is built for the model (:meth:`VampPrior.bind`, called by ``guides.base.build_guide``). The reference is
  not a registered sub-module, so the encoder's weights are stored once (in the guide's state dict) and trained once,
  and building another guide for the same model simply re-binds the prior to it (guide swapping). A guide whose
  q(z|x) has no density at arbitrary points (planar, radial, Sylvester flows invert only what they produced) is
  refused with a :class:`~zoo.errors.ConfigError` when it binds. Pseudo-inputs start at random training points
  (``init_from_data``, called by the CLI once the data are loaded; the paper allows this) or, without data, at
  N(0.05, 0.01^2) values; they pass through a hardtanh (a clamp) to [0, 1] as in the paper's code (to the data's
  range when the data leave [0, 1]).
* ``flow:K`` -- a masked autoregressive flow prior (MAF, Papamakarios et al. 2017): K layers of Pyro's
  ``AffineAutoregressive`` used in the *density* direction, u = f_K(...f_1(z)), p(z) = N(u; 0, I) |det du/dz|, so the
  density of any z is exact and costs one pass per layer (sampling, needed only for pictures, is sequential in dim).
  Pyro's ``.inv`` objects are not ``nn.Module``s: the forward transforms are the registered modules and the
  distribution is assembled from their inverses at each call. The layers' one-entry cache is
  :class:`zoo.transforms.cache.FreshCache` (Pyro's returned the previous density pass for the same z tensor even
  after an optimiser step).
"""
import math
from typing import Optional

import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistribution
from pyro.nn import AutoRegressiveNN
from torch import nn
from torch.autograd.function import once_differentiable

from zoo.errors import ConfigError
from zoo.priors import PRIORS
from zoo.transforms.cache import FreshCache

# ------------------------------------------------------------------------------------------------ distributions

#: Elements of the (values x K x D) block that :class:`ScaledSquaredDistance` holds at a time (1 MiB in float32: the
#: passes over a block stay in cache; measured fastest on CPU for 128 x 500 x 40 among 2^16 ... 2^20).
SQUARED_DISTANCE_CHUNK = 1 << 18


def _row_blocks(n: int, k: int, d: int):
    """``[(first_row, rows), ...]`` covering n rows with at most :data:`SQUARED_DISTANCE_CHUNK` elements of the
    (rows, k, d) block each, and the largest block's row count."""
    step = max(1, SQUARED_DISTANCE_CHUNK // max(1, k * d))
    return [(i, min(step, n - i)) for i in range(0, n, step)], min(step, n)


class ScaledSquaredDistance(torch.autograd.Function):
    r"""
    The Mahalanobis distances of diagonal Gaussians, for N points and K components,

        :math:`Q_{nk} = \sum_{d=1}^{D}\left(\frac{z_{nd} - m_{kd}}{s_{kd}}\right)^2`,

    computed by subtracting first, :math:`u_{nkd} = (z_{nd} - m_{kd})/s_{kd}`, then squaring and summing, over blocks of
    rows of at most :data:`SQUARED_DISTANCE_CHUNK` elements of :math:`u`, so that memory stays
    O(N K + chunk) and the (N, K, D) tensor is never stored. The backward pass recomputes :math:`u` block by block and
    returns the exact gradients

        :math:`\frac{\partial Q_{nk}}{\partial z_{nd}} = 2\frac{u_{nkd}}{s_{kd}},\qquad
        \frac{\partial Q_{nk}}{\partial m_{kd}} = -2\frac{u_{nkd}}{s_{kd}},\qquad
        \frac{\partial Q_{nk}}{\partial s_{kd}} = -2\frac{u_{nkd}^2}{s_{kd}}`,

    contracted with the incoming gradient (first derivatives only).

    The quadratic expansion :math:`z^2\cdot p_k - 2z\cdot(m_kp_k) + m_k^2\cdot p_k`, :math:`p = 1/s^2` (two
    matrix products), cancels when :math:`|m|/s` is large: its terms are of size :math:`D\,(|m|/s)^2`, so in
    float32 its error grows like :math:`D\,(|m|/s)^2\,\epsilon` (about 2 in :math:`Q`, 1 nat in the log-density, for
    :math:`|m| = 3,\ s = 0.01,\ D = 40`), while here :math:`z - m` is exact next to the mean (Sterbenz) and
    :math:`Q` has the relative precision of its summands. ``torch.cdist`` of :math:`z/s` and :math:`m/s` (possible
    only with one scale for all components) uses the same expansion for more than 25 rows, with the same error.

    :param torch.Tensor z: points, shape ``(N, D)``.
    :param torch.Tensor loc: component means :math:`m`, shape ``(K, D)``.
    :param torch.Tensor scale: component standard deviations :math:`s > 0`, shape ``(K, D)``.
    :return: :math:`Q`, shape ``(N, K)``.
    """

    @staticmethod
    def forward(ctx, z, loc, scale):
        inv = scale.reciprocal()
        (n, d), k = z.shape, loc.shape[0]
        blocks, rows = _row_blocks(n, k, d)
        out = z.new_empty(n, k)
        buf = z.new_empty(rows, k, d)  # one block, reused
        for i, m in blocks:
            u = torch.sub(z[i:i + m, None, :], loc, out=buf[:m]).mul_(inv)  # (z - m) / s
            torch.linalg.vecdot(u, u, out=out[i:i + m])
        ctx.save_for_backward(z, loc, inv)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        z, loc, inv = ctx.saved_tensors
        (n, d), k = z.shape, loc.shape[0]
        blocks, rows = _row_blocks(n, k, d)
        want_z, want_loc, want_scale = ctx.needs_input_grad
        grad_z = torch.empty_like(z) if want_z else None
        grad_loc = loc.new_zeros(k, d)
        grad_scale = loc.new_zeros(k, d) if want_scale else None
        ubuf, wbuf = z.new_empty(rows, k, d), z.new_empty(rows, k, d)
        for i, m in blocks:
            u = torch.sub(z[i:i + m, None, :], loc, out=ubuf[:m]).mul_(inv)  # (z - m) / s
            gw = torch.mul(u, inv, out=wbuf[:m]).mul_(grad[i:i + m, :, None])  # g (z - m) / s^2
            if want_z:
                torch.sum(gw, 1, out=grad_z[i:i + m])
            grad_loc.sub_(gw.sum(0))
            if want_scale:
                grad_scale.sub_(gw.mul_(u).sum(0))  # g (z - m)^2 / s^3
        return (grad_z.mul_(2) if want_z else None, grad_loc.mul_(2) if want_loc else None,
                grad_scale.mul_(2) if want_scale else None)


class DiagonalNormalMixture(TorchDistribution):
    """p(z) = sum_k w_k N(z; loc_k, diag scale_k^2) with K components shared by every batch element.

    ``loc`` and ``scale`` have shape (K, D), ``logits`` (K,). The squared distances sum_d ((z_d - m_kd) / s_kd)^2 are
    formed difference first (:class:`ScaledSquaredDistance`), accurate in float32 however far the components sit from
    the origin in units of their scale (the quadratic expansion z^2 p - 2 z m p + m^2 p, p = 1/s^2, lost about 1 nat
    with 500 components in 40-D at |m| = 3, s = 0.01), and in blocks: memory is (values x K), never
    (values x K x D), which matters for K = 500 pseudo-inputs under thousands of importance samples."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, logits: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, batch_shape=torch.Size(),
                 validate_args=None):
        self.log_weights = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
        self.loc, self.scale = loc, scale
        super().__init__(torch.Size(batch_shape), loc.shape[-1:], validate_args=False)

    @property
    def num_components(self):
        return self.loc.shape[0]

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DiagonalNormalMixture, _instance)
        new.log_weights, new.loc, new.scale = self.log_weights, self.loc, self.scale
        super(DiagonalNormalMixture, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        return new

    def component_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log N(value; loc_k, diag scale_k^2) for every k: (..., D) -> (..., K)."""
        d = self.loc.shape[-1]
        flat = value.reshape(-1, d)
        quad = ScaledSquaredDistance.apply(flat, self.loc, self.scale)
        log_norm = self.scale.log().sum(-1) + 0.5 * d * math.log(2 * math.pi)
        out = -0.5 * quad - log_norm
        return out.reshape(value.shape[:-1] + (self.num_components,))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lp = torch.logsumexp(self.component_log_prob(value) + self.log_weights, dim=-1)
        return lp.expand(torch.broadcast_shapes(self.batch_shape, lp.shape))

    def sample(self, sample_shape=torch.Size()):
        shape = torch.Size(sample_shape) + self.batch_shape
        with torch.no_grad():
            k = torch.distributions.Categorical(logits=self.log_weights).sample(shape)
            eps = torch.randn(shape + self.event_shape, dtype=self.loc.dtype, device=self.loc.device)
            return self.loc[k] + self.scale[k] * eps

    @property
    def mean(self):
        w = self.log_weights.exp().unsqueeze(-1)
        return (w * self.loc).sum(0).expand(self.batch_shape + self.event_shape)

    @property
    def variance(self):
        w = self.log_weights.exp().unsqueeze(-1)
        m = (w * self.loc).sum(0)
        var = (w * (self.scale.pow(2) + self.loc.pow(2))).sum(0) - m.pow(2)
        return var.expand(self.batch_shape + self.event_shape)


class UniformComponentMixture(TorchDistribution):
    """p(z) = 1/K sum_k q_k(z) for any distribution q with batch shape (K,) and event shape (D,) (e.g. a guide's
    flow-transformed q(z|u_k)); values are expanded over the K components, so memory is (values x K x D)."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, components, batch_shape=torch.Size(), validate_args=None):
        self.components = components
        super().__init__(torch.Size(batch_shape), components.event_shape, validate_args=False)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(UniformComponentMixture, _instance)
        new.components = self.components
        super(UniformComponentMixture, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        return new

    def log_prob(self, value):
        k = self.components.batch_shape[-1]
        expanded = value.unsqueeze(-2).expand(value.shape[:-1] + (k,) + value.shape[-1:])
        lp = torch.logsumexp(self.components.log_prob(expanded), dim=-1) - math.log(k)
        return lp.expand(torch.broadcast_shapes(self.batch_shape, lp.shape))

    def sample(self, sample_shape=torch.Size()):
        shape = torch.Size(sample_shape) + self.batch_shape
        with torch.no_grad():
            k = self.components.batch_shape[-1]
            draws = self.components.sample(shape)  # shape + (K, D)
            idx = torch.randint(k, shape, device=draws.device)
            index = idx[..., None, None].expand(shape + (1,) + self.event_shape)
            return draws.gather(-2, index).squeeze(-2)


def mixture_of_components(q) -> TorchDistribution:
    """The uniform mixture of the K distributions of ``q`` (batch shape (K,), event (D,)); the fast closed form
    for diagonal Gaussians, the generic one otherwise."""
    base = q
    if isinstance(base, dist.Independent) and base.reinterpreted_batch_ndims == 1:
        base = base.base_dist
    if type(base) in (dist.Normal, torch.distributions.Normal) and base.loc.dim() == 2:
        loc, scale = torch.broadcast_tensors(base.loc, base.scale)
        return DiagonalNormalMixture(loc.new_zeros(loc.shape[0]), loc, scale)
    return UniformComponentMixture(q)


# ------------------------------------------------------------------------------------------------ priors


def _positive_count(value, spec: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"prior {spec}:{value}: K must be a positive integer, e.g. {spec}:4")
    return value


@PRIORS.register("mog", arg="K", summary="learned mixture of K diagonal Gaussians (weights, means, scales)")
class MixtureOfGaussiansPrior(nn.Module):
    """p(z) = sum_k softmax(a)_k N(z; mu_k, diag exp(2 log s_k)), all learned."""

    def __init__(self, num_components: int, dim: int):
        super().__init__()
        num_components = _positive_count(num_components, "mog")
        self.dim, self.num_components = dim, num_components
        self.logits = nn.Parameter(torch.zeros(num_components))
        self.loc = nn.Parameter(torch.randn(num_components, dim))
        self.log_scale = nn.Parameter(torch.zeros(num_components, dim))

    def forward(self, batch_size: int, like: torch.Tensor):
        mix = dist.Categorical(logits=self.logits, validate_args=False)
        comp = dist.Normal(self.loc, self.log_scale.exp(), validate_args=False).to_event(1)
        return dist.MixtureSameFamily(mix, comp, validate_args=False).expand([batch_size])

    def extra_repr(self):
        return f"K={self.num_components}, dim={self.dim}"


@PRIORS.register("vamp", arg="K", paper="Tomczak & Welling 2018, VAE with a VampPrior",
                 summary="VampPrior: 1/K sum_k q(z|u_k), K pseudo-inputs learned through the guide's encoder")
class VampPrior(nn.Module):
    """p(z) = 1/K sum_k q(z | u_k) with learned pseudo-inputs u_k = hardtanh(w_k) in [0, 1]; see the module docstring.

    :param site: the guide site whose q(z|x) forms the mixture (``"z2"`` for the top layer of a hierarchy); by default
        the guide's only real site of size ``dim`` that depends on x alone.
    """

    needs_guide = True

    def __init__(self, num_components: int, dim: int, data_dim: int, site: Optional[str] = None):
        super().__init__()
        num_components = _positive_count(num_components, "vamp")
        self.dim, self.num_components, self.data_dim, self.site = dim, num_components, data_dim, site
        # the paper's code: pseudo-inputs = hardtanh(W) with W initialised around 0.05 (MNIST)
        self.pseudo_inputs_raw = nn.Parameter(torch.empty(num_components, data_dim).normal_(0.05, 0.01))
        self.register_buffer("clip", torch.tensor([0.0, 1.0]))
        # the guide is a plain reference, not a sub-module: its weights live (and are saved, trained) in the guide only
        self.__dict__["_guide"] = None
        self.__dict__["_guide_site"] = None

    # ------------------------------------------------------------------ the pseudo-inputs
    def pseudo_inputs(self) -> torch.Tensor:
        """u_k = hardtanh(w_k) to the clip range, (K, data_dim); the clamp passes gradients at the bounds."""
        return torch.clamp(self.pseudo_inputs_raw, self.clip[0], self.clip[1])

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor):
        """Start the pseudo-inputs at K random training points (with replacement if there are fewer than K), and clip
        them to [0, 1] -- or to the data's range where the data leave [0, 1]."""
        x = x.reshape(x.shape[0], -1).to(self.pseudo_inputs_raw)
        if x.shape[1] != self.data_dim:
            raise ConfigError(f"VampPrior: the data have {x.shape[1]} dimensions, the model {self.data_dim}")
        n = x.shape[0]
        idx = torch.randperm(n)[:self.num_components] if n >= self.num_components else torch.randint(
            n, (self.num_components,))
        self.pseudo_inputs_raw.copy_(x[idx.to(x.device)])
        self.clip.copy_(torch.stack([x.min().clamp(max=0.0), x.max().clamp(min=1.0)]))

    # ------------------------------------------------------------------ the guide
    def _choose_site(self, guide):
        sites = getattr(guide, "sites", None)
        if sites is None or not hasattr(guide, "encoder") or not hasattr(guide, "site_distribution"):
            raise ConfigError(f"the VampPrior needs an amortized guide with an encoder and per-site q(z|x); "
                              f"{type(guide).__name__} has none; use --guide diagonal")
        if self.site is not None:
            chosen = [s for s in sites if s.name == self.site]
        else:
            chosen = [s for s in sites if s.support == "real" and s.dim == self.dim and not s.depends_on]
        if len(chosen) != 1:
            described = ", ".join(f"{s.name} ({s.support}, size {s.dim}"
                                  f"{', given ' + '/'.join(s.depends_on) if s.depends_on else ''})" for s in sites)
            raise ConfigError(f"--prior vamp:{self.num_components} mixes the guide's q(z|x) of one real latent of size "
                              f"{self.dim} conditioned on x alone, and the guide's sites are {described}: "
                              f"{'none' if not chosen else 'more than one'} fits; use another --prior")
        site = chosen[0]
        if site.depends_on or site.support != "real" or site.dim != self.dim:
            raise ConfigError(f"the VampPrior mixes q({site.name}|x), but the guide's {site.name} has size {site.dim}, "
                              f"support {site.support} and depends on {site.depends_on or 'nothing'}; it needs a real "
                              f"site of size {self.dim} conditioned on x alone")
        return site

    def bind(self, guide):
        """Use ``guide``'s q(z|.) from now on (the last guide built for the model wins). Checks at once that the
        guide's q has a density at arbitrary points, which the mixture needs, and refuses the guide otherwise."""
        site = self._choose_site(guide)
        try:
            with torch.no_grad():
                like = self.pseudo_inputs_raw
                mixture = self._mixture(guide, site)
                lp = mixture.log_prob(like.new_zeros(2, 3, self.dim))
            if lp.shape != (2, 3) or not bool(torch.isfinite(lp).all()):
                raise ValueError(f"log-density of shape {tuple(lp.shape)}, finite: {bool(torch.isfinite(lp).all())}")
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 -- KeyError (planar, radial), NotImplementedError, shape errors
            raise ConfigError(
                f"--prior vamp:{self.num_components} needs a guide whose q({site.name}|x) has a density at any point, "
                f"but guide {type(guide).__name__}{_family(guide)} cannot score arbitrary values "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no inverse'}); use --guide diagonal "
                f"or a flow with an inverse (iaf, householder)") from None
        self.__dict__["_guide"] = guide
        self.__dict__["_guide_site"] = site

    @property
    def guide(self):
        return self.__dict__["_guide"]

    def _mixture(self, guide, site):
        u = self.pseudo_inputs()
        q = guide.site_distribution(site, guide.encoder(u))
        return mixture_of_components(q)

    def forward(self, batch_size: int, like: torch.Tensor):
        guide = self.__dict__["_guide"]
        if guide is None:
            raise ConfigError("the VampPrior is not bound to a guide: build the guide with "
                              "guides.base.build_guide(spec, model), which binds it, or call model.prior.bind(guide)")
        return self._mixture(guide, self.__dict__["_guide_site"]).expand([batch_size])

    def extra_repr(self):
        bound = type(self.guide).__name__ if self.guide is not None else "unbound"
        return f"K={self.num_components}, dim={self.dim}, data_dim={self.data_dim}, guide={bound}"


def _family(guide):
    family = getattr(guide, "family", None)
    return f" ({family})" if family else ""


class MAFLayer(FreshCache, T.AffineAutoregressive):
    r"""
    Pyro's :class:`~pyro.distributions.transforms.AffineAutoregressive`,

        :math:`\mathbf{y} = \boldsymbol{\mu}_t + \boldsymbol{\sigma}_t\odot\mathbf{x}`,
        :math:`\log|\det J| = \sum_i\log\sigma_{t,i}`,

    with :math:`(\boldsymbol{\mu}_t, \log\boldsymbol{\sigma}_t)` autoregressive in :math:`\mathbf{x}` (a MADE), used
    by :class:`FlowPrior` in the density direction, with the cache of :class:`~zoo.transforms.cache.FreshCache`:
    ``log_prob`` of a fixed z after an optimiser step is a fresh pass, not the remembered one.

    References:

    [1] George Papamakarios, Theo Pavlakou, Iain Murray. Masked Autoregressive Flow for Density Estimation. NeurIPS
    2017. [arXiv:1705.07057]
    """


@PRIORS.register("flow", arg="K", paper="Papamakarios, Pavlakou & Murray 2017 (MAF); Pyro AffineAutoregressive",
                 summary="MAF prior: K AffineAutoregressive layers in the density direction (exact log p(z))")
class FlowPrior(nn.Module):
    """p(z) = N(f(z); 0, I) |det df/dz|, f = f_K o ... o f_1, each f_i an affine autoregressive map (MADE with
    hidden widths ``hidden``, default [3 dim + 1] as Pyro's, and its own random variable order)."""

    def __init__(self, num_layers: int, dim: int, hidden: Optional[list] = None):
        super().__init__()
        num_layers = _positive_count(num_layers, "flow")
        if dim < 2:
            raise ConfigError(f"--prior flow:{num_layers} needs a latent of at least 2 dimensions, got {dim}")
        self.dim, self.num_layers = dim, num_layers
        widths = list(hidden) if hidden else [3 * dim + 1]
        # the forward (density-direction) transforms are the registered modules; .inv objects are built per call
        self.layers = nn.ModuleList([MAFLayer(AutoRegressiveNN(dim, widths)) for _ in range(num_layers)])

    def transform(self, z: torch.Tensor) -> torch.Tensor:
        """u = f(z), the density direction (what log_prob evaluates)."""
        for layer in self.layers:
            z = layer(z)
        return z

    def forward(self, batch_size: int, like: torch.Tensor):
        zeros = like.new_zeros(())
        base = dist.Normal(zeros, 1.0, validate_args=False).expand([batch_size, self.dim]).to_event(1)
        # sampling applies f^-1 = f_1^-1 o ... o f_K^-1; log_prob applies f_1 first, ..., f_K last
        return dist.TransformedDistribution(base, [layer.inv for layer in reversed(self.layers)], validate_args=False)

    def extra_repr(self):
        return f"K={self.num_layers}, dim={self.dim}"
