"""Energy functions U1-U4 (Rezende & Mohamed 2015) and reverse-KL fits of flows to them."""
import math
import time

import pytest
import torch

from guides.transforms.energies import ENERGIES, U1, U2, U3, U4, energy, log_normalizer
from guides.transforms.energy_fit import BASELINE, fit_energy, fit_energy_restarts

ROOT_2PI = math.sqrt(2 * math.pi)
# z1-extent of U2-U4 with the envelope: 8 on the window plus two half-Gaussian tails of scale 0.4
_EXTENT = 8 + 0.4 * ROOT_2PI
# exp(-U) integrates in z2 to a Gaussian mass for every z1 (w1, w2, w3 only shift the means), hence closed forms:
EXACT_LOG_Z = {
    "U2": math.log(0.4 * ROOT_2PI * _EXTENT),
    "U3": math.log(2 * 0.35 * ROOT_2PI * _EXTENT),
    "U4": math.log((0.4 + 0.35) * ROOT_2PI * _EXTENT),
}


def test_energies_are_the_papers_formulas():
    z = torch.tensor([[2.0, 0.0], [0.3, -1.2], [-1.5, 2.5]], dtype=torch.float64)
    z1, z2 = z[:, 0], z[:, 1]
    w1 = torch.sin(2 * math.pi * z1 / 4)
    w2 = 3 * torch.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)
    w3 = 3 / (1 + torch.exp(-(z1 - 1) / 0.3))
    r = z.norm(dim=-1)
    u1 = 0.5 * ((r - 2) / 0.4) ** 2 - torch.log(
        torch.exp(-0.5 * ((z1 - 2) / 0.6) ** 2) + torch.exp(-0.5 * ((z1 + 2) / 0.6) ** 2)
    )
    u2 = 0.5 * ((z2 - w1) / 0.4) ** 2
    u3 = -torch.log(torch.exp(-0.5 * ((z2 - w1) / 0.35) ** 2) + torch.exp(-0.5 * ((z2 - w1 + w2) / 0.35) ** 2))
    u4 = -torch.log(torch.exp(-0.5 * ((z2 - w1) / 0.4) ** 2) + torch.exp(-0.5 * ((z2 - w1 + w3) / 0.35) ** 2))
    for f, ref in [(U1, u1), (U2, u2), (U3, u3), (U4, u4)]:
        torch.testing.assert_close(f(z), ref, rtol=1e-12, atol=1e-12)
        assert f(z.expand(4, 3, 2)).shape == (4, 3)
    # the envelope is zero on the paper's window [-4, 4] and only there
    assert torch.equal(energy("U2", z), U2(z))
    far = torch.tensor([[5.0, 0.0]], dtype=torch.float64)
    assert energy("U3", far) > U3(far)
    assert torch.equal(energy("U1", far), U1(far))


@pytest.mark.parametrize("name", list(ENERGIES))
def test_log_normalizer(name):
    fine = log_normalizer(name)
    assert abs(fine - log_normalizer(name, n=800)) < 1e-9  # the grid is converged
    assert abs(fine - log_normalizer(name, lim=10.0, n=1000)) < 1e-9  # and wide enough
    if name in EXACT_LOG_Z:
        assert abs(fine - EXACT_LOG_Z[name]) < 1e-9


def test_sixteen_planar_layers_beat_a_diagonal_gaussian():
    """16 planar layers fit every energy better than the best diagonal Gaussian, by a margin outside the noise.

    Both get 300 Adam steps of 256 samples (seed 0). The diagonal Gaussian is the best of four starts (origin and three
    random means): from the origin alone it stays, on U1, at a broad blob over both modes (KL 3.2 instead of 0.9),
    which would flatter the flow. Measured with seed 0 at 300 steps: diagonal 0.94 / 1.84 / 1.91 / 1.63 nats on U1-U4,
    planar 0.67 / 0.85 / 0.73 / 0.85; over seeds 0-2 the smallest margin was 0.27 nats (U1, seed 0) against the
    0.13-0.19 asked: 0.1 nats plus four standard errors of the difference (s.e. 0.005-0.02). (At 600 steps planar
    gets to 0.17 / 0.36 / 0.42 / 0.63, at twice the test's time.)
    """
    start = time.perf_counter()
    for name in ENERGIES:
        log_z = log_normalizer(name)
        diag = fit_energy_restarts(name, BASELINE, restarts=4, steps=300, batch_size=256, seed=0, log_z=log_z,
                                   eval_samples=20000)
        planar = fit_energy(name, "planar", num_layers=16, steps=300, batch_size=256, seed=0, log_z=log_z,
                            eval_samples=20000)
        for r in (diag, planar):  # a KL: non-negative up to Monte-Carlo error (checks log Z and the log-dets)
            assert r.kl > -4 * r.kl_se, (name, r.family, r.kl, r.kl_se)
        margin = diag.kl - planar.kl
        assert margin >= 0.1 + 4 * math.hypot(diag.kl_se, planar.kl_se), (name, diag.kl, planar.kl)
    print(f"fits took {time.perf_counter() - start:.1f} s")
