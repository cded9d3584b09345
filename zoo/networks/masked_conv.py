r"""PixelCNN building blocks: masked convolutions and a small conditional PixelCNN.

van den Oord, Kalchbrenner, Kavukcuoglu, "Pixel Recurrent Neural Networks" (ICML 2016) and van den Oord, Kalchbrenner,
Vinyals, Espeholt, Graves, Kavukcuoglu, "Conditional Image Generation with PixelCNN Decoders" (NeurIPS 2016); used as
the autoregressive decoder :math:`p(\mathbf{x}\mid\mathbf{z}) = \prod_i p(x_i\mid\mathbf{x}_{<i}, \mathbf{z})` of
PixelVAE (Gulrajani et al. 2017) and of the VampPrior paper's PixelHVAE (Tomczak & Welling 2018).
"""
from typing import Callable, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from pyro.distributions import Bernoulli
from torch import nn

__all__ = ["MaskedConv2d", "PixelCNN", "causal_mask"]


def _pair(k) -> tuple:
    return (k, k) if isinstance(k, int) else tuple(k)


def causal_mask(mask_type: str, kernel_size) -> torch.Tensor:
    """The ``(kh, kw)`` 0/1 mask of a PixelCNN kernel: rows above the centre, and the centre row left of the centre
    (``'A'``) or up to and including it (``'B'``)."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    kh, kw = _pair(kernel_size)
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"masked convolutions need odd kernel sizes, got {kernel_size}")
    mask = torch.ones(kh, kw)
    mask[kh // 2, kw // 2 + (mask_type == "B"):] = 0
    mask[kh // 2 + 1:, :] = 0
    return mask


class MaskedConv2d(nn.Conv2d):
    r"""
    A "same"-size 2-D convolution whose kernel is masked so that output pixel :math:`i` (raster order: row by row, left
    to right) sees only input pixels :math:`j < i` (mask ``'A'``, the first layer of a PixelCNN: a pixel never sees
    itself) or :math:`j \le i` (mask ``'B'``, every later layer: the features at :math:`i` already summarise
    :math:`\mathbf{x}_{<i}`):

        :math:`\mathbf{h} = (\mathbf{W}\odot\mathbf{M}) * \mathbf{x} + \mathbf{b}`,
        :math:`M_{uv} = [u < c_h] + [u = c_h][v < c_w]` (``'A'``), :math:`+\,[u=c_h][v=c_w]` (``'B'``),

    for kernel offsets :math:`(u, v)` and centre :math:`(c_h, c_w)` (van den Oord et al. 2016). All the channels of a
    pixel are masked together (no colour-channel ordering within a pixel). The mask is a buffer (it follows
    ``.to()`` and is saved with the state dict) and multiplies the weight at every call, so the masked weights never
    act even after an optimiser step. Stride 1, zero padding ``dilation * (k // 2)``, odd kernel sizes.

    :param str mask_type: ``'A'`` or ``'B'``.
    :param int in_channels: input channels.
    :param int out_channels: output channels.
    :param kernel_size: odd int or pair.
    :param int dilation: dilation of the kernel.
    :param bool bias: with a bias.
    """

    def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size, dilation: int = 1,
                 bias: bool = True):
        mask = causal_mask(mask_type, kernel_size)
        kh, kw = mask.shape
        super().__init__(in_channels, out_channels, (kh, kw), stride=1,
                         padding=(dilation * (kh // 2), dilation * (kw // 2)), dilation=dilation, bias=bias)
        self.mask_type = mask_type
        self.register_buffer("mask", mask[None, None].to(self.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        return f"mask_type={self.mask_type!r}, " + super().extra_repr()


class PixelCNN(nn.Module):
    r"""
    A small PixelCNN that maps an image :math:`\mathbf{x}` (B, C, H, W) and an optional conditioning feature map
    :math:`\mathbf{s}` (B, K, H, W) to the parameters of :math:`p(x_i\mid\mathbf{x}_{<i},\mathbf{s})` at every
    pixel, all in one pass (exact: output pixel :math:`i` depends on :math:`\mathbf{x}` only through
    :math:`\mathbf{x}_{<i}`, raster order):

        :math:`\mathbf{h}^1 = \mathrm{ReLU}(\mathrm{conv}_A(\mathbf{x}) + V_1\mathbf{s})`,
        :math:`\mathbf{h}^{l+1} = \mathbf{h}^l + \mathrm{ReLU}(\mathrm{conv}_B(\mathbf{h}^l) + V_{l+1}\mathbf{s})`,
        :math:`\text{out} = W_2\,\mathrm{ReLU}(W_1\mathbf{h}^L)`,

    with masked convolutions (:class:`MaskedConv2d`, mask A first, then B with residual connections), a 1x1
    conditioning projection :math:`V_l` per layer (the spatially conditioned PixelCNN of van den Oord et al. 2016:
    output pixel :math:`i` sees :math:`\mathbf{s}` at :math:`i` and at the pixels before it in its receptive field;
    put global information, such as a decoded latent :math:`\mathbf{z}`, into every pixel of :math:`\mathbf{s}`, as
    PixelVAE's upsampling decoder does) and a 1x1 output head. It has the plain PixelCNN's blind spot (part of the
    past out of the receptive field), not the gated two-stack architecture.

    :meth:`sample` draws pixels one at a time in raster order: :math:`H W` passes (each on the rows up to the
    current one, which is exact: later rows cannot reach it).

    Example usage (binary images, p(x | z) with a feature map from z):

    >>> net = PixelCNN(1, hidden=32, num_layers=4, kernel_size=3, out_channels_per_pixel=1, conditioning_channels=8)
    >>> logits = net(x, cond)  # (B, 1, H, W)
    >>> likelihood = pyro.distributions.Bernoulli(logits=logits).to_event(3)
    >>> x_new = net.sample(cond)  # (B, 1, H, W), Bernoulli by default

    :param int in_channels: C, channels of the image.
    :param int hidden: feature channels of the masked layers.
    :param int num_layers: masked layers (the first with mask A), at least 1.
    :param kernel_size: odd kernel size of the masked layers: an int or a (kh, kw) tuple for all of them, or a list of
        ``num_layers`` sizes, one per layer (e.g. a larger first kernel, the paper's 7x7).
    :param int out_channels_per_pixel: outputs per pixel, e.g. C Bernoulli logits or 3 K mixture-of-logistics
        parameters.
    :param int conditioning_channels: K, channels of the conditioning map (0: unconditional).
    """

    def __init__(self, in_channels: int, hidden: int, num_layers: int, kernel_size: Union[int, Tuple[int, int], List],
                 out_channels_per_pixel: int, conditioning_channels: int = 0):
        super().__init__()
        if num_layers < 1:
            raise ValueError("num_layers must be >= 1")
        if isinstance(kernel_size, list):
            if len(kernel_size) != num_layers:
                raise ValueError("a list of kernel sizes needs one per layer")
            sizes = kernel_size
        else:
            sizes = [kernel_size] * num_layers
        self.in_channels, self.out_channels_per_pixel = in_channels, out_channels_per_pixel
        self.conditioning_channels = conditioning_channels
        self.layers = nn.ModuleList(
            [MaskedConv2d("A" if i == 0 else "B", in_channels if i == 0 else hidden, hidden, sizes[i])
             for i in range(num_layers)]
        )
        self.cond_proj = nn.ModuleList(
            [nn.Conv2d(conditioning_channels, hidden, 1, bias=False) for _ in range(num_layers)]
        ) if conditioning_channels > 0 else None
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                                  nn.Conv2d(hidden, out_channels_per_pixel, 1))

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        if (cond is None) != (self.cond_proj is None):
            raise ValueError("pass a conditioning map exactly when conditioning_channels > 0")
        h = None
        for i, layer in enumerate(self.layers):
            a = layer(x if i == 0 else h)
            if cond is not None:
                a = a + self.cond_proj[i](cond)
            h = torch.relu(a) if i == 0 else h + torch.relu(a)
        return self.head(h)

    @torch.no_grad()
    def sample(self, cond: Optional[torch.Tensor] = None, shape=None,
               dist_fn: Optional[Callable[[torch.Tensor], torch.distributions.Distribution]] = None) -> torch.Tensor:
        r"""Draw :math:`\mathbf{x}\sim\prod_i p(x_i\mid\mathbf{x}_{<i},\mathbf{s})` pixel by pixel in raster order.

        :param cond: the conditioning map (B, K, H, W), or None for an unconditional network.
        :param shape: (B, C, H, W); by default B, H, W from ``cond`` and C = ``in_channels``.
        :param dist_fn: turns the network output (B, P, h, W) into a distribution whose ``sample()`` has shape
            (B, C, h, W); default ``Bernoulli(logits=out)`` (needs P = C). A deterministic ``dist_fn`` (e.g. a
            ``Delta``) makes the result a fixed point of the one-pass network.
        """
        param = next(self.parameters())
        if shape is None:
            if cond is None:
                raise ValueError("give the shape (B, C, H, W) of an unconditional sample")
            shape = (cond.shape[0], self.in_channels) + tuple(cond.shape[-2:])
        if dist_fn is None:
            if self.out_channels_per_pixel != self.in_channels:
                raise ValueError("the default Bernoulli dist_fn needs out_channels_per_pixel == in_channels")
            dist_fn = _bernoulli
        b, c, height, width = shape
        x = torch.zeros(shape, dtype=param.dtype, device=param.device)
        for r in range(height):
            x_rows = x[:, :, : r + 1]
            cond_rows = None if cond is None else cond[:, :, : r + 1]
            for col in range(width):
                value = dist_fn(self(x_rows, cond_rows)).sample()
                x[:, :, r, col] = value[:, :, r, col].to(x.dtype)
        return x


def _bernoulli(out):
    return Bernoulli(logits=out, validate_args=False)
