"""The five fidelity defects of issue 18, each reproduced as reported (every test fails on the code before the fix).

1. the discretized logistic's log-scale floor was PixelCNN++'s -7 taken on the wrong pixel scale;
2. the VampPrior's diagonal-Gaussian mixture lost up to a nat in float32 (expanded square);
3. InvertibleConv1x1 with one channel and the Sylvester flows with M = 1 held parameters that never get a gradient;
4. cached transforms returned their previous output for the same input tensor after a parameter update;
5. LogitTransform's domain included its endpoints, which it maps to +-inf (NaN for a tiny alpha).
"""
import math

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------------ 1. PixelCNN++ floor
def _pixelcnnpp_interior_log_prob(x01: float, loc01: float, log_scale_pm1: float) -> float:
    """log P(x) of an interior pixel as PixelCNN++ computes it, on its own [-1, 1] scale (bin half-width 1/255)."""
    x, loc, s = 2.0 * x01 - 1.0, 2.0 * loc01 - 1.0, math.exp(log_scale_pm1)

    def sigmoid(t):
        return 1.0 / (1.0 + math.exp(-t))

    return math.log(sigmoid((x + 1.0 / 255 - loc) / s) - sigmoid((x - 1.0 / 255 - loc) / s))


@pytest.mark.parametrize("spec", ["discretized-logistic", "discretized-mix-logistic:3"])
def test_log_scale_floor_is_pixelcnnpp_floor_on_the_unit_scale(spec):
    from zoo.likelihoods import build_likelihood

    d = 4
    lik = build_likelihood(spec, d).double()
    k = lik.params_per_dim // 3 if spec != "discretized-logistic" else 1
    x = torch.tensor([[1.0, 37.0, 128.0, 254.0]], dtype=torch.float64) / 255  # interior pixels
    # every location at its pixel's bin centre and every log-scale far below the floor: the best an interior pixel can do
    if spec == "discretized-logistic":
        out = torch.cat([x, torch.full_like(x, -50.0)], dim=-1)
    else:
        logits = torch.zeros(1, k * d, dtype=torch.float64)
        out = torch.cat([logits, x.repeat(1, k), torch.full((1, k * d), -50.0, dtype=torch.float64)], dim=-1)
    lp = lik(out).base_dist.log_prob(x)  # per pixel
    closed_form = math.log(math.tanh(math.exp(7.0) / 510.0))  # log tanh(delta / 4), delta = 2 e^7 / 255
    assert closed_form == pytest.approx(-0.027124614, abs=1e-9)
    torch.testing.assert_close(lp, torch.full_like(lp, closed_form), rtol=0, atol=1e-12)
    # ... which is PixelCNN++'s own value at its floor of -7 on [-1, 1] (the old floor gave -0.234)
    assert _pixelcnnpp_interior_log_prob(37 / 255, 37 / 255, -7.0) == pytest.approx(closed_form, abs=1e-12)
