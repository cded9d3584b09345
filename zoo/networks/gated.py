r"""Gated layers of the VampPrior paper's encoders and decoders.

Tomczak & Welling, "VAE with a VampPrior" (AISTATS 2018), following the gating of Dauphin et al. (2017) and the
gated PixelCNN (van den Oord et al. 2016): every layer computes a value and a gate with two independent affine maps,

    :math:`\mathbf{h} = a(\mathbf{W}_1\mathbf{x} + \mathbf{b}_1) \odot \sigma(\mathbf{W}_2\mathbf{x} + \mathbf{b}_2)`,

with :math:`a` the identity unless an ``activation`` is given (the paper's reference code passes one for some
layers) and :math:`\sigma` the logistic sigmoid. The value map is ``self.h`` and the gate map ``self.g``, as in the
reference code, so the weights are easy to read and initialise separately.
"""
from typing import Callable, Optional

import torch
from torch import nn

__all__ = ["GatedConv2d", "GatedConvTranspose2d", "GatedDense", "GatedUpsampleConv2d"]


class _Gated(nn.Module):
    activation: Optional[Callable]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.h(x)
        if self.activation is not None:
            h = self.activation(h)
        return h * torch.sigmoid(self.g(x))


class GatedDense(_Gated):
    r"""Gated fully connected layer :math:`\mathbf{h} = a(\mathbf{W}_1\mathbf{x}+\mathbf{b}_1)\odot
    \sigma(\mathbf{W}_2\mathbf{x}+\mathbf{b}_2)` on the last axis (any leading batch axes).

    :param int in_features: input size.
    :param int out_features: output size.
    :param activation: optional :math:`a` (a module or callable), identity by default.
    """

    def __init__(self, in_features: int, out_features: int, activation: Optional[Callable] = None):
        super().__init__()
        self.activation = activation
        self.h = nn.Linear(in_features, out_features)
        self.g = nn.Linear(in_features, out_features)


class GatedConv2d(_Gated):
    r"""Gated 2-D convolution :math:`\mathbf{h} = a(\mathbf{W}_1 * \mathbf{x}+\mathbf{b}_1)\odot
    \sigma(\mathbf{W}_2 * \mathbf{x}+\mathbf{b}_2)`; the arguments are those of :class:`torch.nn.Conv2d`.

    :param activation: optional :math:`a` (a module or callable), identity by default.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 activation: Optional[Callable] = None):
        super().__init__()
        self.activation = activation
        self.h = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation)
        self.g = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation)


class GatedConvTranspose2d(_Gated):
    r"""Gated transposed convolution (upsampling in decoders) :math:`\mathbf{h} = a(\mathbf{W}_1 \star
    \mathbf{x}+\mathbf{b}_1)\odot\sigma(\mathbf{W}_2\star\mathbf{x}+\mathbf{b}_2)`; the arguments are those of
    :class:`torch.nn.ConvTranspose2d` (output size ``(in - 1) * stride - 2 * padding + dilation * (k - 1) +
    output_padding + 1``).

    :param activation: optional :math:`a` (a module or callable), identity by default.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 dilation=1, activation: Optional[Callable] = None):
        super().__init__()
        self.activation = activation
        self.h = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, output_padding,
                                    dilation=dilation)
        self.g = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, output_padding,
                                    dilation=dilation)


class GatedUpsampleConv2d(nn.Module):
    r"""Nearest-neighbour upsampling by ``scale_factor`` followed by a "same" :class:`GatedConv2d` (odd kernel):
    the checkerboard-free alternative to :class:`GatedConvTranspose2d` for decoders.

    :param activation: optional :math:`a` (a module or callable), identity by default.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, scale_factor: int = 2,
                 activation: Optional[Callable] = None):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError("GatedUpsampleConv2d needs an odd kernel size")
        self.upsample = nn.Upsample(scale_factor=scale_factor, mode="nearest")
        self.conv = GatedConv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                                activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.upsample(x))
