"""Building blocks of the flow density models (NICE, RealNVP, Glow, MAF) as Pyro ``TransformModule``s.

Every transform is a bijection of flattened vectors (``event_dim = 1``, inputs ``(..., D)``) with an exact
``log_abs_det_jacobian`` (one value per data point); image transforms take the ``(C, H, W)`` shape they act on and
reshape internally. Forward is the papers' normalising direction f: data -> latent. A density model scores data with
``TransformedDistribution(base, as_generative(flow))``, base of event shape (D,).

=====================  ===========================================================================================
NICE                   :class:`AdditiveCoupling` (alternating partitions), :class:`DiagonalScaling`
RealNVP                :class:`LogitTransform`, :class:`AffineCoupling2d` (checkerboard / channel masks, tanh),
                       :class:`Squeeze`, :class:`MultiScaleSplit`; vectors: Pyro's ``AffineCoupling`` + ``Permute``
Glow                   :class:`ActNorm`, :class:`InvertibleConv1x1`, :class:`AffineCoupling2d` (``scale="sigmoid"``,
                       channel mask), :class:`Squeeze`, :class:`MultiScaleSplit`
MAF                    Pyro's ``AffineAutoregressive(AutoRegressiveNN(...))`` used in the data -> latent direction
                       (the MADE pass is parallel that way), with ``BatchNorm`` or :class:`ActNorm` between layers
data                   :func:`dequantize`, :func:`bits_per_dim`
=====================  ===========================================================================================
"""
from zoo.transforms._base import FlowTransform, ImageFlowTransform, as_generative
from zoo.transforms.actnorm import ActNorm
from zoo.transforms.additive_coupling import AdditiveCoupling, partition_indices
from zoo.transforms.affine_coupling import AffineCoupling2d, ResNetConditioner, checkerboard_mask
from zoo.transforms.diagonal_scaling import DiagonalScaling
from zoo.transforms.invertible_conv import InvertibleConv1x1
from zoo.transforms.multiscale import MultiScaleSplit
from zoo.transforms.preprocessing import LogitTransform, bits_per_dim, dequantize
from zoo.transforms.squeeze import Squeeze

__all__ = [
    "ActNorm",
    "AdditiveCoupling",
    "AffineCoupling2d",
    "DiagonalScaling",
    "FlowTransform",
    "ImageFlowTransform",
    "InvertibleConv1x1",
    "LogitTransform",
    "MultiScaleSplit",
    "ResNetConditioner",
    "Squeeze",
    "as_generative",
    "bits_per_dim",
    "checkerboard_mask",
    "dequantize",
    "partition_indices",
]
