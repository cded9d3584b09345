r"""The four 2-D energy functions of Rezende & Mohamed (2015), Table 1 / Figure 3: unnormalised densities
:math:`p(\mathbf{z}) \propto e^{-U(\mathbf{z})}` that a flow fits by reverse KL.

With :math:`w_1(\mathbf{z}) = \sin(2\pi z_1/4)`, :math:`w_2(\mathbf{z}) = 3 e^{-\frac12((z_1-1)/0.6)^2}`,
:math:`w_3(\mathbf{z}) = 3\sigma((z_1-1)/0.3)`:

- :math:`U_1 = \frac12\left(\frac{\|\mathbf{z}\|-2}{0.4}\right)^2 - \ln\left(e^{-\frac12(\frac{z_1-2}{0.6})^2} + e^{-\frac12(\frac{z_1+2}{0.6})^2}\right)`
- :math:`U_2 = \frac12\left(\frac{z_2-w_1}{0.4}\right)^2`
- :math:`U_3 = -\ln\left(e^{-\frac12(\frac{z_2-w_1}{0.35})^2} + e^{-\frac12(\frac{z_2-w_1+w_2}{0.35})^2}\right)`
- :math:`U_4 = -\ln\left(e^{-\frac12(\frac{z_2-w_1}{0.4})^2} + e^{-\frac12(\frac{z_2-w_1+w_3}{0.35})^2}\right)`

:math:`U_2, U_3, U_4` do not depend on :math:`z_1` far from the origin, so :math:`e^{-U}` is not integrable over the
plane (a reverse-KL fit could spread along :math:`z_1` for ever and :math:`\log Z` is infinite). The paper shows them on
:math:`[-4, 4]^2`; here :func:`energy` adds, for those three, the envelope
:math:`\frac12\left((|z_1| - 4)_+/0.4\right)^2`, which is zero on the paper's window and makes the density proper.
:func:`U1` .. :func:`U4` are the paper's formulas alone.
"""
import math
from typing import Callable, Dict

import torch

__all__ = ["U1", "U2", "U3", "U4", "ENERGIES", "ENVELOPE_EDGE", "ENVELOPE_SCALE", "envelope", "energy",
           "log_density", "log_normalizer", "density_grid"]

#: The envelope added to U2-U4 is zero for |z1| <= ENVELOPE_EDGE (the paper's plotting window) ...
ENVELOPE_EDGE = 4.0
#: ... and quadratic outside it with this length scale.
ENVELOPE_SCALE = 0.4


def _w1(z):
    return torch.sin(2 * math.pi * z[..., 0] / 4)


def _w2(z):
    return 3 * torch.exp(-0.5 * ((z[..., 0] - 1) / 0.6) ** 2)


def _w3(z):
    return 3 * torch.sigmoid((z[..., 0] - 1) / 0.3)


def _neg_logaddexp(a, b):
    return -torch.logaddexp(a, b)


def U1(z: torch.Tensor) -> torch.Tensor:
    """Ring with two modes. ``z`` of shape ``(..., 2)`` -> ``(...)``."""
    r = torch.linalg.vector_norm(z, dim=-1)
    return 0.5 * ((r - 2) / 0.4) ** 2 + _neg_logaddexp(
        -0.5 * ((z[..., 0] - 2) / 0.6) ** 2, -0.5 * ((z[..., 0] + 2) / 0.6) ** 2
    )


def U2(z: torch.Tensor) -> torch.Tensor:
    """Sine wave. ``z`` of shape ``(..., 2)`` -> ``(...)`` (not normalisable alone; see :func:`energy`)."""
    return 0.5 * ((z[..., 1] - _w1(z)) / 0.4) ** 2


def U3(z: torch.Tensor) -> torch.Tensor:
    """Sine wave splitting in two. ``z`` of shape ``(..., 2)`` -> ``(...)`` (not normalisable alone)."""
    d = z[..., 1] - _w1(z)
    return _neg_logaddexp(-0.5 * (d / 0.35) ** 2, -0.5 * ((d + _w2(z)) / 0.35) ** 2)


def U4(z: torch.Tensor) -> torch.Tensor:
    """Sine wave with a step. ``z`` of shape ``(..., 2)`` -> ``(...)`` (not normalisable alone)."""
    d = z[..., 1] - _w1(z)
    return _neg_logaddexp(-0.5 * (d / 0.4) ** 2, -0.5 * ((d + _w3(z)) / 0.35) ** 2)


#: The paper's formulas by name.
ENERGIES: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"U1": U1, "U2": U2, "U3": U3, "U4": U4}


def envelope(z: torch.Tensor) -> torch.Tensor:
    r""":math:`\frac12((|z_1| - 4)_+/0.4)^2`, zero on the paper's window."""
    return 0.5 * (torch.relu(z[..., 0].abs() - ENVELOPE_EDGE) / ENVELOPE_SCALE) ** 2


def energy(name: str, z: torch.Tensor) -> torch.Tensor:
    """The energy ``name`` (``"U1"`` .. ``"U4"``) at ``z`` (..., 2), with the envelope for U2-U4 (a proper density)."""
    if name not in ENERGIES:
        raise KeyError(f"unknown energy {name!r}; choose one of {', '.join(ENERGIES)}")
    u = ENERGIES[name](z)
    return u if name == "U1" else u + envelope(z)


def log_density(name: str, z: torch.Tensor) -> torch.Tensor:
    """Unnormalised log density ``-energy(name, z)``."""
    return -energy(name, z)


def density_grid(lim: float, n: int, dtype=torch.float64, device=None):
    """A regular ``n x n`` grid of cell centres on ``[-lim, lim]^2``: ``(z (n, n, 2), cell area)``; ``z[i, j]`` has
    ``z1 = x[j]``, ``z2 = x[i]`` (rows are z2, as in an image)."""
    step = 2 * lim / n
    x = torch.linspace(-lim + step / 2, lim - step / 2, n, dtype=dtype, device=device)
    z2, z1 = torch.meshgrid(x, x, indexing="ij")
    return torch.stack([z1, z2], dim=-1), step * step


def log_normalizer(name: str, lim: float = 8.0, n: int = 1600) -> float:
    r""":math:`\log Z = \log\int e^{-U(\mathbf{z})}d\mathbf{z}` by the midpoint rule on ``[-lim, lim]^2`` with
    ``n x n`` cells, in float64. The integrands are smooth and decay like Gaussians (widths >= 0.35) well inside the
    default box, so the defaults (spacing 0.01) agree with spacing 0.0025 to 1e-12 nats (the midpoint rule converges
    spectrally fast for such integrands); the tests check that halving the spacing changes nothing."""
    z, area = density_grid(lim, n)
    chunks = [torch.logsumexp(log_density(name, rows).flatten(), 0) for rows in z.split(400, dim=0)]
    return float(torch.logsumexp(torch.stack(chunks), 0) + math.log(area))
