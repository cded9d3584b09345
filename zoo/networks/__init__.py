"""Networks shared by the zoo's models: PixelCNN blocks (masked convolutions) and the VampPrior paper's gated layers."""
from zoo.networks.gated import GatedConv2d, GatedConvTranspose2d, GatedDense, GatedUpsampleConv2d
from zoo.networks.masked_conv import MaskedConv2d, PixelCNN, causal_mask

__all__ = [
    "GatedConv2d",
    "GatedConvTranspose2d",
    "GatedDense",
    "GatedUpsampleConv2d",
    "MaskedConv2d",
    "PixelCNN",
    "causal_mask",
]
