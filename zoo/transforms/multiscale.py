from typing import Optional, Sequence

import torch
import torch.nn as nn

from zoo.transforms._base import FlowTransform, _shape3, register_parts


class MultiScaleSplit(FlowTransform):
    r"""
    The factoring-out step of the multi-scale architecture of RealNVP (Dinh, Sohl-Dickstein & Bengio, 2017) and
    Glow (Kingma & Dhariwal, 2018), written as one bijection of the flattened vector. The input, an image of shape
    ``(C, H, W)`` (typically just squeezed), is split along the channels into an *active* part
    :math:`\mathbf{x}_a` (the first ``num_active`` channels) and a *factored-out* part :math:`\mathbf{x}_f` (the
    rest); the inner flow :math:`g` (a list of transforms built for vectors of size ``num_active*H*W``, e.g. of shape
    ``(num_active, H, W)``) acts on the active part only,

        :math:`\mathbf{y} = (g(\mathbf{x}_a),\ \mathbf{x}_f)`,

    with inverse :math:`\mathbf{x} = (g^{-1}(\mathbf{y}_a),\ \mathbf{y}_f)` and log-determinant (block-diagonal
    Jacobian)

        :math:`\log|\det J| = \log|\det \partial g/\partial\mathbf{x}_a|`,

    the sum of the inner transforms' log-dets. Because the image is flattened channel-major, the active channels are
    exactly the first ``num_active*H*W`` entries of the vector, so the split costs no copy and every factored-out
    value keeps its place in the output vector.

    *How this realises the multi-scale architecture.* RealNVP's level :math:`i` computes
    :math:`(\mathbf{z}_i, \mathbf{h}_i) = f^{(i)}(\mathbf{h}_{i-1})` (couplings, squeeze, couplings), sends
    :math:`\mathbf{z}_i` straight to the latent output, and continues with :math:`\mathbf{h}_i` only. Nesting
    ``[coupling..., Squeeze, coupling..., MultiScaleSplit(shape, [next level...])]`` does exactly that: the factored-out
    half passes through all later levels unchanged, and the flow's final output, the concatenation of every level's
    factored-out part and the last level's output, is scored by the standard normal base distribution of shape (D,).
    The whole model thus stays one bijection of :math:`\mathbb{R}^D` with an exact log-det and composes with Pyro's
    ``TransformedDistribution``. Glow's learned prior on the factored-out half,
    :math:`p(\mathbf{z}_f\mid\mathbf{h}) = \mathcal{N}(\mu(\mathbf{h}), \sigma(\mathbf{h}))`, is the same as a
    standard normal after an affine map of the factored-out channels whose shift and scale are functions of the active
    ones, i.e. a channel-mask :class:`~zoo.transforms.AffineCoupling2d` (``mask="channel", parity=0`` with the default
    ``num_active``; its scale is bounded where Glow's is not) placed just before this wrapper. The factored-out order here (first half of the channels continues) follows
    Glow's ``split2d``; RealNVP's reference code also factors out half of the channels after its channel-wise
    couplings.

    :param shape: the ``(C, H, W)`` shape of the input image.
    :param transforms: the inner flow, applied in order to the active part (each with event_dim 1).
    :param num_active: number of channels that go through the inner flow (default ``C // 2``).

    References:

    [1] Laurent Dinh, Jascha Sohl-Dickstein, Samy Bengio. Density estimation using Real NVP. ICLR 2017.
    [arXiv:1605.08803]

    [2] Diederik P. Kingma, Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1 Convolutions. NeurIPS 2018.
    [arXiv:1807.03039]
    """

    def __init__(self, shape, transforms: Sequence, num_active: Optional[int] = None):
        super().__init__()
        self.shape = _shape3(shape)
        c, h, w = self.shape
        self.num_active = c // 2 if num_active is None else int(num_active)
        if not 1 <= self.num_active <= c:
            raise ValueError(f"num_active must be in [1, {c}], got {self.num_active}")
        self.active_shape = (self.num_active, h, w)
        self.split_sizes = (self.num_active * h * w, (c - self.num_active) * h * w)
        self.inner = nn.ModuleList()
        self.parts = register_parts(self.inner, transforms)
        for t in self.parts:
            if t.domain.event_dim != 1 or t.codomain.event_dim != 1:
                raise ValueError(f"inner transforms must act on vectors (event_dim 1), got {t}")

    @property
    def dim(self) -> int:
        return sum(self.split_sizes)

    def _check(self, v):
        if v.shape[-1] != self.dim:
            raise ValueError(f"MultiScaleSplit of shape {self.shape} got inputs of size {v.shape[-1]}")

    def _call(self, x):
        self._check(x)
        a, f = x.split(self.split_sizes, dim=-1)
        ldj = x.new_zeros(x.shape[:-1])
        for t in self.parts:
            b = t(a)
            ldj = ldj + t.log_abs_det_jacobian(a, b)
            a = b
        y = torch.cat([a, f], dim=-1)
        self._remember(x, y, ldj)
        return y

    def _inverse(self, y):
        self._check(y)
        a, f = y.split(self.split_sizes, dim=-1)
        ldj = y.new_zeros(y.shape[:-1])
        for t in reversed(self.parts):
            b = t.inv(a)
            ldj = ldj + t.log_abs_det_jacobian(b, a)
            a = b
        x = torch.cat([a, f], dim=-1)
        self._remember(x, y, ldj)
        return x

    def log_abs_det_jacobian(self, x, y):
        ldj = self._recall(x, y)
        if ldj is None:
            ldj = self._recall(x, self._call(x))
        return ldj
