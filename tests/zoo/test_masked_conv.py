"""PixelCNN blocks: exact causality through layers and stacks, conditioning, sequential sampling; gated layers."""
import pyro.distributions as dist
import pytest
import torch
from torch import nn
from torch.autograd.functional import jacobian

from zoo.networks import (
    GatedConv2d,
    GatedConvTranspose2d,
    GatedDense,
    GatedUpsampleConv2d,
    MaskedConv2d,
    PixelCNN,
    causal_mask,
)

F64 = torch.float64
H, W = 5, 4


def raster(i):
    return divmod(i, W)


def pixel_jacobian(f, x):
    """|d out[:, :, pixel i] / d x[:, :, pixel j]| summed over channels: an (HW, HW) matrix, exact zeros kept."""
    jac = jacobian(f, x)  # (1, Co, H, W, 1, Ci, H, W)
    return jac.abs().sum(dim=(0, 1, 4, 5)).reshape(H * W, H * W)


def randomise(module):
    """Move every parameter off its initial value (no accidental zeros)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return module


def test_masks():
    a = causal_mask("A", 3)
    b = causal_mask("B", 3)
    torch.testing.assert_close(a, torch.tensor([[1.0, 1, 1], [1, 0, 0], [0, 0, 0]]))
    torch.testing.assert_close(b, torch.tensor([[1.0, 1, 1], [1, 1, 0], [0, 0, 0]]))
    assert causal_mask("B", (3, 5))[1].tolist() == [1, 1, 1, 0, 0]
    with pytest.raises(ValueError):
        causal_mask("C", 3)
    with pytest.raises(ValueError):
        causal_mask("A", 4)
    conv = MaskedConv2d("A", 2, 3, 5)
    assert "mask" in dict(conv.named_buffers()) and "mask" in conv.state_dict()
    assert conv.to(F64).mask.dtype == F64
    assert conv(torch.randn(1, 2, 6, 7, dtype=F64)).shape == (1, 3, 6, 7)


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("kernel_size,dilation", [(3, 1), (5, 1), ((3, 5), 1), (3, 2)])
def test_single_layer_causality(mask_type, kernel_size, dilation):
    conv = randomise(MaskedConv2d(mask_type, 2, 3, kernel_size, dilation=dilation).to(F64))
    dep = pixel_jacobian(conv, torch.randn(1, 2, H, W, dtype=F64))
    i, j = torch.meshgrid(torch.arange(H * W), torch.arange(H * W), indexing="ij")
    forbidden = j >= i if mask_type == "A" else j > i
    assert (dep[forbidden] == 0).all()  # exactly zero
    diag = dep.diagonal()
    assert (diag == 0).all() if mask_type == "A" else (diag > 0).all()
    assert dep[~forbidden].count_nonzero() > 0


@pytest.mark.parametrize("conditioning_channels", [0, 3])
def test_stack_causality_and_conditioning(conditioning_channels):
    """Through a whole PixelCNN (mask A, then B layers): output pixel i never depends on x_j for j >= i (itself
    included), does depend on its left and upper neighbours, and sees the conditioning map at its own pixel."""
    net = randomise(PixelCNN(2, hidden=6, num_layers=4, kernel_size=[5, 3, 3, 3], out_channels_per_pixel=3,
                             conditioning_channels=conditioning_channels).to(F64))
    x = torch.randn(1, 2, H, W, dtype=F64)
    cond = torch.randn(1, conditioning_channels, H, W, dtype=F64) if conditioning_channels else None
    dep = pixel_jacobian(lambda x_: net(x_, cond), x)
    i, j = torch.meshgrid(torch.arange(H * W), torch.arange(H * W), indexing="ij")
    assert (dep[j >= i] == 0).all()
    for p in range(1, H * W):
        r, c = raster(p)
        if c > 0:
            assert dep[p, p - 1] > 0  # left neighbour
        if r > 0:
            assert dep[p, p - W] > 0  # pixel above
    if conditioning_channels:
        dep_cond = pixel_jacobian(lambda s: net(x, s), cond)
        assert (dep_cond.diagonal() > 0).all()  # the conditioning reaches every output pixel
        assert (dep_cond[j > i] == 0).all()  # 1x1 conditioning projections through masked layers: no look-ahead


def test_mask_b_paths_carry_the_pixel_itself_only_after_the_first_layer():
    """A stack of B layers only sees x_i itself (its own input pixel); swapping the first layer for mask A removes
    exactly that dependence, so the self-dependence of a PixelCNN runs only through mask-B paths that do not start
    at the input pixel itself."""
    torch.manual_seed(1)
    b_layers = [randomise(MaskedConv2d("B", 2 if k == 0 else 4, 4, 3).to(F64)) for k in range(3)]
    a_first = randomise(MaskedConv2d("A", 2, 4, 3).to(F64))
    stack_b = nn.Sequential(b_layers[0], nn.Tanh(), b_layers[1], nn.Tanh(), b_layers[2])
    stack_a = nn.Sequential(a_first, nn.Tanh(), b_layers[1], nn.Tanh(), b_layers[2])
    x = torch.randn(1, 2, H, W, dtype=F64)
    dep_b, dep_a = pixel_jacobian(stack_b, x), pixel_jacobian(stack_a, x)
    i, j = torch.meshgrid(torch.arange(H * W), torch.arange(H * W), indexing="ij")
    assert (dep_b[j > i] == 0).all() and (dep_b.diagonal() > 0).all()
    assert (dep_a[j >= i] == 0).all()
    assert (dep_a[j < i] > 0).sum() > 0


@pytest.mark.parametrize("conditioning_channels", [0, 2])
def test_sequential_sampling_reproduces_one_pass(conditioning_channels):
    """With a deterministic decoder (threshold the logits), the sequentially drawn image is a fixed point of the
    one-pass network: every pixel equals the threshold of the logits the network gives it from the finished image."""
    net = randomise(PixelCNN(2, hidden=8, num_layers=3, kernel_size=3, out_channels_per_pixel=2,
                             conditioning_channels=conditioning_channels).to(F64))
    cond = torch.randn(3, conditioning_channels, H, W, dtype=F64) if conditioning_channels else None
    step = lambda out: dist.Delta((out > 0).to(out.dtype))  # noqa: E731
    x = net.sample(cond, shape=(3, 2, H, W), dist_fn=step)
    torch.testing.assert_close(x, (net(x, cond) > 0).to(F64), rtol=0, atol=0)
    assert 0 < x.mean() < 1


def test_bernoulli_sampling_and_likelihood():
    net = PixelCNN(1, hidden=8, num_layers=2, kernel_size=3, out_channels_per_pixel=1, conditioning_channels=4)
    cond = torch.randn(2, 4, H, W)
    x = net.sample(cond)
    assert x.shape == (2, 1, H, W) and set(x.unique().tolist()) <= {0.0, 1.0}
    log_px = dist.Bernoulli(logits=net(x, cond)).to_event(3).log_prob(x)
    assert log_px.shape == (2,) and torch.isfinite(log_px).all()
    with pytest.raises(ValueError):
        net(x)  # a conditional network needs its conditioning map
    with pytest.raises(ValueError):
        PixelCNN(1, 8, 2, 3, out_channels_per_pixel=3).sample(shape=(1, 1, 2, 2))  # Bernoulli needs P == C


def test_gated_layers_match_formula():
    x = torch.randn(4, 7)
    dense = GatedDense(7, 5)
    expected = (x @ dense.h.weight.T + dense.h.bias) * torch.sigmoid(x @ dense.g.weight.T + dense.g.bias)
    torch.testing.assert_close(dense(x), expected)
    act = GatedDense(7, 5, activation=nn.Tanh())
    expected = torch.tanh(x @ act.h.weight.T + act.h.bias) * torch.sigmoid(x @ act.g.weight.T + act.g.bias)
    torch.testing.assert_close(act(x), expected)

    img = torch.randn(2, 3, 8, 8)
    conv = GatedConv2d(3, 4, 3, stride=2, padding=1, activation=torch.relu)
    f = torch.nn.functional
    expected = torch.relu(f.conv2d(img, conv.h.weight, conv.h.bias, 2, 1)) * torch.sigmoid(
        f.conv2d(img, conv.g.weight, conv.g.bias, 2, 1))
    torch.testing.assert_close(conv(img), expected)
    assert conv(img).shape == (2, 4, 4, 4)

    tconv = GatedConvTranspose2d(3, 4, 4, stride=2, padding=1)
    expected = f.conv_transpose2d(img, tconv.h.weight, tconv.h.bias, 2, 1) * torch.sigmoid(
        f.conv_transpose2d(img, tconv.g.weight, tconv.g.bias, 2, 1))
    torch.testing.assert_close(tconv(img), expected)
    assert tconv(img).shape == (2, 4, 16, 16)

    up = GatedUpsampleConv2d(3, 4, 3, scale_factor=2)
    big = f.interpolate(img, scale_factor=2, mode="nearest")
    expected = f.conv2d(big, up.conv.h.weight, up.conv.h.bias, 1, 1) * torch.sigmoid(
        f.conv2d(big, up.conv.g.weight, up.conv.g.bias, 1, 1))
    torch.testing.assert_close(up(img), expected)
    assert up(img).shape == (2, 4, 16, 16)
