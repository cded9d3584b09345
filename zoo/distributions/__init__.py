"""Distributions the zoo adds to Pyro's: the von Mises-Fisher family on the sphere (hyperspherical VAE) and
discretised logistic likelihoods for 8-bit images (PixelCNN++ / IAF decoders)."""
from zoo.distributions.discretized_logistic import DiscretizedLogistic, DiscretizedMixLogistic, discretized_grid
from zoo.distributions.von_mises_fisher import (
    HypersphericalUniform,
    VonMisesFisher,
    bessel_iv_ratio,
    log_bessel_iv,
    log_sphere_area,
)

__all__ = [
    "DiscretizedLogistic",
    "DiscretizedMixLogistic",
    "HypersphericalUniform",
    "VonMisesFisher",
    "bessel_iv_ratio",
    "discretized_grid",
    "log_bessel_iv",
    "log_sphere_area",
]
