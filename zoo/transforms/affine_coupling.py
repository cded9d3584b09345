import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.transforms._base import ImageFlowTransform

MASKS = ("checkerboard", "channel")
SCALES = ("tanh", "sigmoid")


def checkerboard_mask(height: int, width: int, parity: int = 0, *, dtype=None, device=None):
    """``b[h, w] = (h + w + parity) % 2`` as a float (1, H, W) tensor: 1 marks the pixels that are passed through."""
    h = torch.arange(height, device=device).view(-1, 1)
    w = torch.arange(width, device=device).view(1, -1)
    return ((h + w + parity) % 2).to(dtype or torch.get_default_dtype()).unsqueeze(0)


class _ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h):
        return h + self.conv2(F.relu(self.conv1(F.relu(h))))


class ResNetConditioner(nn.Module):
    """A small ResNet ``(N, in, H, W) -> (N, out, H, W)``: 3x3 conv, ``num_blocks`` residual blocks of two 3x3 convs,
    ReLU, 3x3 conv. The last conv starts at zero, so a coupling layer starts as the identity (as in Glow)."""

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int = 64, num_blocks: int = 2):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, hidden_channels, 3, padding=1)
        self.blocks = nn.Sequential(*[_ResBlock(hidden_channels) for _ in range(num_blocks)])
        self.out = nn.Conv2d(hidden_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        return self.out(F.relu(self.blocks(self.inp(x))))


class AffineCoupling2d(ImageFlowTransform):
    r"""
    The affine coupling layer of RealNVP (Dinh, Sohl-Dickstein & Bengio, 2017) for images
    :math:`\mathbf{x}\in\mathbb{R}^{C\times H\times W}` (given flattened), with a binary mask :math:`\mathbf{b}`,

        :math:`\mathbf{y} = \mathbf{b}\odot\mathbf{x} + (1-\mathbf{b})\odot
        \big(\mathbf{x}\odot\exp(s(\mathbf{b}\odot\mathbf{x})) + t(\mathbf{b}\odot\mathbf{x})\big)`,

    with inverse

        :math:`\mathbf{x} = \mathbf{b}\odot\mathbf{y} + (1-\mathbf{b})\odot
        \big(\mathbf{y} - t(\mathbf{b}\odot\mathbf{y})\big)\odot\exp(-s(\mathbf{b}\odot\mathbf{y}))`

    and log-determinant (triangular Jacobian)

        :math:`\log|\det J| = \sum_{c,h,w} (1-b_{c,h,w})\, s(\mathbf{b}\odot\mathbf{x})_{c,h,w}`.

    Masks: ``"checkerboard"``, :math:`b_{c,h,w} = (h + w + \text{parity}) \bmod 2` for every channel (the mask is given
    to the conditioner as an extra input channel); ``"channel"``, the first ``C // 2`` channels condition the other
    ones (``parity=1``: the other way round) -- RealNVP applies it after a :class:`~zoo.transforms.Squeeze`, and
    Glow uses it throughout.

    :math:`s, t` come from a small ResNet (:class:`ResNetConditioner`, zero-initialised last layer: the layer starts
    as the identity). The log-scale is bounded: ``scale="tanh"`` gives :math:`s = a_c\tanh(\tilde s)` with a learned
    per-channel rescaling :math:`a_c` (RealNVP's rescaled tanh), ``scale="sigmoid"`` gives
    :math:`\exp(s) = \mathrm{sigmoid}(\tilde s + 2)` (Glow's coupling).

    For vector data use Pyro's :class:`~pyro.distributions.transforms.AffineCoupling` (its log-det matches its map,
    checked in the tests) with a :class:`~pyro.distributions.transforms.Permute` between layers.

    :param shape: the ``(C, H, W)`` image shape.
    :param mask: ``"checkerboard"`` or ``"channel"``.
    :param parity: 0 or 1, which half of the mask is passed through.
    :param hidden_channels: width of the conditioner.
    :param num_blocks: residual blocks of the conditioner.
    :param scale: ``"tanh"`` (RealNVP) or ``"sigmoid"`` (Glow).
    :param conditioner: a module ``(N, C_in, H, W) -> (N, 2 C_out, H, W)`` to use instead of the ResNet, with
        ``C_in = C + 1, C_out = C`` for the checkerboard mask and ``C_in``, ``C_out`` the two channel groups otherwise.

    References:

    [1] Laurent Dinh, Jascha Sohl-Dickstein, Samy Bengio. Density estimation using Real NVP. ICLR 2017.
    [arXiv:1605.08803]

    [2] Diederik P. Kingma, Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1 Convolutions. NeurIPS 2018.
    [arXiv:1807.03039]
    """

    def __init__(self, shape, mask: str = "checkerboard", parity: int = 0, *, hidden_channels: int = 64,
                 num_blocks: int = 2, scale: str = "tanh", conditioner: nn.Module = None):
        super().__init__(shape)
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        c, h, w = self.shape
        self.mask_type, self.parity, self.scale_type = mask, int(parity) % 2, scale
        if mask == "checkerboard":
            if h * w < 2:
                raise ValueError(f"a checkerboard mask needs at least 2 pixels, got shape {self.shape}")
            self.register_buffer("mask", checkerboard_mask(h, w, self.parity), persistent=False)
            c_in, c_out = c + 1, c
        else:
            if c < 2:
                raise ValueError(f"a channel mask needs at least 2 channels, got shape {self.shape}")
            self.split = (c // 2, c - c // 2)  # (first group, second group)
            c_in, c_out = (self.split[0], self.split[1]) if self.parity == 0 else (self.split[1], self.split[0])
        self.c_out = c_out
        self.conditioner = conditioner if conditioner is not None else ResNetConditioner(
            c_in, 2 * c_out, hidden_channels, num_blocks)
        if scale == "tanh":
            self.rescale = nn.Parameter(torch.ones(c_out, 1, 1))

    def _log_scale(self, raw):
        if self.scale_type == "tanh":
            return self.rescale.to(raw.dtype) * torch.tanh(raw)
        return F.logsigmoid(raw + 2.0)

    def _split(self, x4):
        a, b = x4.split(self.split, dim=1)
        return (a, b) if self.parity == 0 else (b, a)  # (conditioning, transformed)

    def _join(self, cond, trans):
        return torch.cat([cond, trans] if self.parity == 0 else [trans, cond], dim=1)

    def _transform(self, v, inverse: bool):
        """Apply the coupling (or its inverse) to the flattened ``v``; returns (output, log-det of the forward map)."""
        batch_shape = v.shape[:-1]
        v4 = self._fold(v)
        if self.mask_type == "checkerboard":
            b = self.mask.to(v4.dtype)
            inp = torch.cat([v4 * b, b.expand(v4.shape[0], 1, *b.shape[1:])], dim=1)
            raw, t = self.conditioner(inp).chunk(2, dim=1)
            log_s = self._log_scale(raw) * (1 - b)
            t = t * (1 - b)
            out = (v4 - t) * torch.exp(-log_s) if inverse else v4 * torch.exp(log_s) + t
        else:
            cond, trans = self._split(v4)
            raw, t = self.conditioner(cond).chunk(2, dim=1)
            log_s = self._log_scale(raw)
            trans = (trans - t) * torch.exp(-log_s) if inverse else trans * torch.exp(log_s) + t
            out = self._join(cond, trans)
        ldj = log_s.reshape(log_s.shape[0], -1).sum(-1).reshape(batch_shape)
        return self._unfold(out, batch_shape), ldj

    def _call(self, x):
        y, ldj = self._transform(x, inverse=False)
        self._remember(x, y, ldj)
        return y

    def _inverse(self, y):
        x, ldj = self._transform(y, inverse=True)
        self._remember(x, y, ldj)
        return x

    def log_abs_det_jacobian(self, x, y):
        ldj = self._recall(x, y)
        if ldj is None:
            _, ldj = self._transform(x, inverse=False)
        return ldj
