"""The flow density transforms of zoo.transforms: exact log-dets, exact inverses, and the details of each paper.

Every transform is checked in float64 with its parameters moved off their initial values: log|det J| against the
autograd Jacobian of each data point (and the Jacobian is block-diagonal over the batch), inverse(forward(x)) == x and
forward(inverse(y)) == y to 1e-10, batched inputs (B, D) and (K, B, D). The table of cases is checked to cover every
transform class that zoo.transforms exports.
"""
import copy
import inspect
import math

import numpy as np
import pyro.distributions as dist
import pyro.distributions.transforms as pyro_T
import pytest
import torch
from torch.distributions import Transform

import zoo.transforms as T

IMG = (2, 4, 4)
D = 32


def _unit(shape, gen):
    return torch.rand(shape, generator=gen, dtype=torch.float64) * 0.9 + 0.05


def _normal(shape, gen):
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def _small_ac(shape, mask, parity=0, scale="tanh"):
    return T.AffineCoupling2d(shape, mask, parity, hidden_channels=8, num_blocks=1, scale=scale)


# name -> (factory returning (transform, module holding its parameters, dimension), input sampler)
def _pyro_affine_coupling():
    t = pyro_T.affine_coupling(D, hidden_dims=[16])
    return t, t, D


def _pyro_maf():
    t = pyro_T.affine_autoregressive(D, hidden_dims=[40])
    return t, t, D


def _multiscale():
    inner = [_small_ac((2, 2, 2), "checkerboard", 0), T.InvertibleConv1x1((2, 2, 2)), T.ActNorm((2, 2, 2))]
    t = T.MultiScaleSplit((4, 2, 2), inner)
    return t, t, 16


def _multiscale_nested():
    deeper = T.MultiScaleSplit((4, 1, 1), [T.AdditiveCoupling(2, [8])])
    t = T.MultiScaleSplit((2, 2, 2), [T.Squeeze((1, 2, 2)), _small_ac((4, 1, 1), "channel", 1), deeper],
                          num_active=1)
    return t, t, 8


def _own(t, dim):
    return lambda: (t(), None, dim)


CASES = {
    "ActNorm-image": (_own(lambda: T.ActNorm(IMG), D), _normal),
    "ActNorm-vector": (_own(lambda: T.ActNorm(D), D), _normal),
    "AdditiveCoupling-alternate": (_own(lambda: T.AdditiveCoupling(D, [16, 16]), D), _normal),
    "AdditiveCoupling-half-odd": (_own(lambda: T.AdditiveCoupling(D - 1, [16], partition="half", parity=1),
                                       D - 1), _normal),
    "DiagonalScaling": (_own(lambda: T.DiagonalScaling(D), D), _normal),
    "AffineCoupling2d-checker-tanh": (_own(lambda: _small_ac(IMG, "checkerboard", 0), D), _normal),
    "AffineCoupling2d-checker-sigmoid": (_own(lambda: _small_ac((3, 2, 3), "checkerboard", 1, "sigmoid"), 18),
                                         _normal),
    "AffineCoupling2d-channel-tanh": (_own(lambda: _small_ac(IMG, "channel", 0), D), _normal),
    "AffineCoupling2d-channel-sigmoid-odd": (_own(lambda: _small_ac((3, 2, 2), "channel", 1, "sigmoid"), 12),
                                             _normal),
    "Squeeze": (_own(lambda: T.Squeeze(IMG), D), _normal),
    "InvertibleConv1x1": (_own(lambda: T.InvertibleConv1x1(IMG), D), _normal),
    "InvertibleConv1x1-vector": (_own(lambda: T.InvertibleConv1x1(6), 6), _normal),
    "MultiScaleSplit": (_multiscale, _normal),
    "MultiScaleSplit-nested": (_multiscale_nested, _normal),
    "LogitTransform": (_own(lambda: T.LogitTransform(0.05), D), _unit),
    "pyro-AffineCoupling(vector RealNVP)": (_pyro_affine_coupling, _normal),
    "pyro-AffineAutoregressive(MAF layer)": (_pyro_maf, _normal),
}


def _exported_transform_classes():
    return {obj for name in T.__all__ for obj in [getattr(T, name)]
            if inspect.isclass(obj) and issubclass(obj, Transform) and "_call" in vars(obj)}


def test_table_covers_every_exported_transform():
    covered = set()
    for factory, _ in CASES.values():
        t, _, _ = factory()
        covered.add(type(t))
        covered.update(type(p) for p in getattr(t, "parts", []))
    missing = {c.__name__ for c in _exported_transform_classes()} - {c.__name__ for c in covered}
    assert not missing, f"exported transforms without a test case: {missing}"


def _build(name, seed=0):
    torch.manual_seed(seed)
    factory, sampler = CASES[name]
    t, module, dim = factory()
    module = t if module is None else module
    module.double()
    gen = torch.Generator().manual_seed(seed + 1)
    t(sampler((8, dim), gen) * 1.5 + 0.3 if sampler is _normal else sampler((8, dim), gen))  # data-dependent inits
    with torch.no_grad():  # move every parameter off its initial value
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return t, dim, sampler, gen


def _per_point_jacobian_logdets(t, x):
    """(N,) log|det| of each point's Jacobian from autograd, and the largest cross-point entry of the Jacobian."""
    n, d = x.shape
    jac = torch.autograd.functional.jacobian(lambda v: t(v), x, vectorize=True)  # (N, D, N, D)
    blocks = torch.stack([jac[i, :, i, :] for i in range(n)])
    off = jac.clone()
    for i in range(n):
        off[i, :, i, :] = 0
    return torch.linalg.slogdet(blocks).logabsdet, off.abs().max()


@pytest.mark.parametrize("name", list(CASES))
def test_log_det_matches_autograd_jacobian(name):
    t, dim, sampler, gen = _build(name)
    x = sampler((5, dim), gen)
    y = t(x)
    ldj = t.log_abs_det_jacobian(x, y)  # the value remembered from the forward call
    assert ldj.shape == (5,) and ldj.dtype == torch.float64
    expected, cross = _per_point_jacobian_logdets(t, x)
    assert cross == 0.0  # each data point is transformed independently
    torch.testing.assert_close(ldj, expected, atol=1e-8, rtol=1e-8)
    fresh = t.log_abs_det_jacobian(x.clone(), y.clone())  # recomputed from scratch
    torch.testing.assert_close(fresh, expected, atol=1e-8, rtol=1e-8)
    assert not torch.allclose(expected, torch.zeros_like(expected)) or name.startswith(("Squeeze", "Additive"))


@pytest.fixture
def float64_default(request):
    # Pyro's AffineAutoregressive._inverse starts from torch.zeros(..., device=y.device): float32 whatever y's dtype,
    # so its float64 inverse needs float64 as the default dtype (a Pyro bug; float32 models are unaffected)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.mark.parametrize("name", list(CASES))
def test_batch_shapes_and_inverse_round_trips(name, request):
    if "MAF" in name:
        request.getfixturevalue("float64_default")
    t, dim, sampler, gen = _build(name)
    x = sampler((2, 3, dim), gen)
    y = t(x)
    assert y.shape == x.shape
    ldj = t.log_abs_det_jacobian(x, y)
    assert ldj.shape == (2, 3)
    flat_x = x.reshape(-1, dim)
    flat_y = t(flat_x)
    torch.testing.assert_close(y.reshape(-1, dim), flat_y, atol=1e-12, rtol=0)
    torch.testing.assert_close(ldj.reshape(-1), t.log_abs_det_jacobian(flat_x, flat_y), atol=1e-10, rtol=0)

    assert (t.inv(y) - x).abs().max() < 1e-10
    z = _normal((2, 3, dim), gen)
    x_of_z = t.inv(z)
    assert (t(x_of_z) - z).abs().max() < 1e-10
    # the log-det remembered from an inverse call is that of the forward map at the computed point, and the .inv
    # transform (what TransformedDistribution uses) reports its negative
    remembered = t.log_abs_det_jacobian(x_of_z, z)
    torch.testing.assert_close(remembered, t.log_abs_det_jacobian(x_of_z.clone(), z.clone()), atol=1e-10, rtol=0)
    x2 = t.inv(z)
    torch.testing.assert_close(t.inv.log_abs_det_jacobian(z, x2), -remembered, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", [n for n in CASES if not n.startswith("pyro-")])
def test_constraints_and_module_interface(name):
    t, _, _, _ = _build(name)
    assert t.bijective and t.domain.event_dim == 1 and t.codomain.event_dim == 1 and t.event_dim == 1
    assert isinstance(t, dist.TransformModule)
    sd = t.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in sd.values())


@pytest.mark.parametrize("name", [n for n in CASES if not n.startswith("pyro-")])
def test_device_agnostic_and_copyable(name):
    t, dim, sampler, gen = _build(name)
    x = sampler((2, dim), gen)
    y = t(x)  # leaves a remembered log-det behind: copies must not trip over it
    twin = copy.deepcopy(t)
    torch.testing.assert_close(twin(x), y, atol=0, rtol=0)
    # on the meta device every tensor the transform makes must follow its inputs/parameters (no CPU default)
    t.to("meta")
    xm = torch.empty(2, 3, dim, device="meta", dtype=torch.float64)
    ym = t(xm)
    xi = t.inv(ym)
    assert ym.device.type == xi.device.type == "meta"
    assert t.log_abs_det_jacobian(xi, ym).shape == (2, 3) and t.log_abs_det_jacobian(xm, t(xm)).device.type == "meta"


# ---------------------------------------------------------------------------------------------------------- ActNorm
def _shifted_batch(gen, shape=(16,), c=2, hw=16):
    mean = torch.tensor([3.0, -1.0], dtype=torch.float64).repeat_interleave(hw)[: c * hw]
    scale = torch.tensor([2.0, 0.5], dtype=torch.float64).repeat_interleave(hw)[: c * hw]
    return mean + scale * _normal(shape + (c * hw,), gen)


def _channel_moments(y, c=2):
    per_channel = y.reshape(-1, c, y.shape[-1] // c).transpose(0, 1).reshape(c, -1)
    return per_channel.mean(1), per_channel.var(1, unbiased=False)


@pytest.mark.parametrize("batch", [(16,), (3, 5)])
def test_actnorm_initialises_on_first_batch_only(batch):
    gen = torch.Generator().manual_seed(0)
    t = T.ActNorm(IMG).double()
    assert not bool(t.initialized)
    x = _shifted_batch(gen, batch)
    mean, var = _channel_moments(t(x))
    torch.testing.assert_close(mean, torch.zeros(2, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(var, torch.ones(2, dtype=torch.float64), atol=1e-5, rtol=0)
    assert bool(t.initialized)
    params = [p.detach().clone() for p in t.parameters()]
    x2 = 5.0 + 3.0 * _normal((16, D), gen)
    mean2, _ = _channel_moments(t(x2))
    assert mean2.abs().min() > 0.5  # the second batch is not standardised: no re-init
    for p, q in zip(params, t.parameters()):
        assert torch.equal(p, q)


def test_actnorm_inverse_first_does_not_initialise():
    t = T.ActNorm(IMG).double()
    z = _normal((4, D), torch.Generator().manual_seed(0))
    torch.testing.assert_close(t.inv(z), z)
    assert not bool(t.initialized)


def test_actnorm_loaded_state_dict_is_not_reinitialised():
    gen = torch.Generator().manual_seed(1)
    trained = T.ActNorm(IMG).double()
    trained(_shifted_batch(gen))
    with torch.no_grad():
        trained.bias.add_(0.5)
        trained.log_scale.sub_(0.2)
    state = trained.state_dict()
    assert "initialized" in state
    fresh = T.ActNorm(IMG).double()
    fresh.load_state_dict(state)
    x = _shifted_batch(gen)
    torch.testing.assert_close(fresh(x), trained(x), atol=0, rtol=0)
    torch.testing.assert_close(fresh.bias, state["bias"], atol=0, rtol=0)
    torch.testing.assert_close(fresh.log_scale, state["log_scale"], atol=0, rtol=0)
    # and a module (even a used one) loaded with an uninitialised state initialises on its next batch
    again = T.ActNorm(IMG).double()
    again(_shifted_batch(gen) * 3.0)
    again.load_state_dict(T.ActNorm(IMG).double().state_dict())
    mean, _ = _channel_moments(again(x))
    assert mean.abs().max() < 1e-10


def test_actnorm_log_det_formula():
    t, _, _, gen = _build("ActNorm-image")
    x = _normal((3, D), gen)
    expected = 16 * t.log_scale.sum()
    torch.testing.assert_close(t.log_abs_det_jacobian(x, t(x)), expected.expand(3))


# ------------------------------------------------------------------------------------------------ 1x1 convolution
def test_invertible_conv_weight_is_plu_and_log_det_is_hw_logdet_w():
    t, _, _, gen = _build("InvertibleConv1x1")
    c, h, w = IMG
    p = t.permutation
    assert torch.equal(p.abs().sum(0), torch.ones(c, dtype=p.dtype)) and set(p.unique().tolist()) <= {0.0, 1.0}
    lower = torch.tril(t.lower, -1) + torch.eye(c, dtype=torch.float64)
    upper = torch.triu(t.upper, 1) + torch.diag(t.sign_s * torch.exp(t.log_abs_s))
    weight = t.weight()
    torch.testing.assert_close(weight, p @ lower @ upper, atol=1e-14, rtol=0)
    x = _normal((3, D), gen)
    y = t(x)
    by_hand = torch.einsum("ij,njp->nip", weight, x.reshape(3, c, h * w)).reshape(3, D)
    torch.testing.assert_close(y, by_hand, atol=1e-12, rtol=0)
    logdet_w = torch.linalg.slogdet(weight).logabsdet
    torch.testing.assert_close(t.log_abs_det_jacobian(x, y), (h * w * logdet_w).expand(3), atol=1e-12, rtol=0)
    torch.testing.assert_close(t.inverse_weight() @ weight, torch.eye(c, dtype=torch.float64), atol=1e-12, rtol=0)


def test_invertible_conv_diagonal_keeps_its_sign():
    t = T.InvertibleConv1x1((5, 1, 1)).double()
    with torch.no_grad():
        t.log_abs_s.fill_(-50.0)  # |s| tiny but never zero, signs fixed
    _, _, upper = t.factors()
    assert torch.all(torch.diagonal(upper) != 0)
    assert torch.equal(torch.sign(torch.diagonal(upper)), t.sign_s)


# --------------------------------------------------------------------------------------------------------- Squeeze
def test_squeeze_moves_pixels_as_realnvp():
    t = T.Squeeze((1, 4, 4))
    assert t.out_shape == (4, 2, 2)
    x = torch.arange(16.0).reshape(1, 16)  # image rows [0..3], [4..7], [8..11], [12..15]
    y = t(x).reshape(4, 2, 2)
    # channel 2i+j holds the pixels (2h+i, 2w+j) of every 2x2 block
    expected = torch.tensor([[[0, 2], [8, 10]], [[1, 3], [9, 11]], [[4, 6], [12, 14]], [[5, 7], [13, 15]]],
                            dtype=torch.float32)
    assert torch.equal(y, expected)
    assert torch.equal(t.inv(t(x)), x)
    z = torch.randn(3, 2, 16)
    assert torch.equal(t(t.inv(z)), z)


def test_squeeze_rejects_odd_sizes():
    with pytest.raises(ValueError):
        T.Squeeze((1, 3, 4))


# ----------------------------------------------------------------------------------------------- Multi-scale split
def test_multiscale_log_det_is_inner_log_det_and_factored_part_passes():
    t, dim, _, gen = _build("MultiScaleSplit")
    x = _normal((2, 3, dim), gen)
    y = t(x)
    n = t.split_sizes[0]
    assert torch.equal(y[..., n:], x[..., n:])
    a = x[..., :n]
    inner_ld = torch.zeros(2, 3, dtype=torch.float64)
    for part in t.parts:
        b = part(a)
        inner_ld = inner_ld + part.log_abs_det_jacobian(a, b)
        a = b
    torch.testing.assert_close(y[..., :n], a, atol=0, rtol=0)
    torch.testing.assert_close(t.log_abs_det_jacobian(x, y), inner_ld, atol=1e-12, rtol=0)
    assert len(list(t.parameters())) == sum(len(list(p.parameters())) for p in t.parts)


def test_multiscale_rejects_image_event_dims():
    with pytest.raises(ValueError):
        T.MultiScaleSplit((2, 2, 2), [pyro_T.AffineTransform(0.0, 1.0, event_dim=0)])


# ---------------------------------------------------------------------------------------------------- preprocessing
def test_bits_per_dim_known_cases():
    assert T.bits_per_dim(0.0, 784) == pytest.approx(8.0, abs=1e-12)  # uniform density on [0,1]^D
    out = T.bits_per_dim(torch.zeros(5, dtype=torch.float64), 784)
    assert out.shape == (5,) and torch.all(out == 8.0)
    np.testing.assert_allclose(T.bits_per_dim(np.zeros(3), 10), 8.0)
    # log p = -D ln 2 nats on [0,1]^D is 1 bit/dim more than uniform
    assert T.bits_per_dim(-784 * math.log(2.0), 784) == pytest.approx(9.0, abs=1e-12)
    assert T.bits_per_dim(0.0, 10, dequantization_bins=2) == pytest.approx(1.0)
    # the logit transform's log-det counts: uniform data pushed through logit and scored by the exact logistic density
    # (the push-forward of the uniform) is still 8 bits/dim
    lt = T.LogitTransform(0.0)
    v = T.dequantize(torch.randint(0, 256, (4, 6)), dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
    y = lt(v)
    log_logistic = (-torch.nn.functional.softplus(-y) - torch.nn.functional.softplus(y)).sum(-1)
    torch.testing.assert_close(T.bits_per_dim(log_logistic + lt.log_abs_det_jacobian(v, y), 6),
                               torch.full((4,), 8.0, dtype=torch.float64))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_bits_per_dim_raises_on_non_finite(bad):
    with pytest.raises(ValueError):
        T.bits_per_dim(torch.tensor([-1.0, bad, -2.0]), 4)
    with pytest.raises(ValueError):
        T.bits_per_dim(bad, 4)
    with pytest.raises(ValueError):
        T.bits_per_dim(np.array([0.0, bad]), 4)


def test_dequantize():
    gen = torch.Generator().manual_seed(0)
    k = torch.randint(0, 256, (50, 7), generator=gen)
    v = T.dequantize(k, generator=gen, dtype=torch.float64)
    assert v.dtype == torch.float64 and v.shape == k.shape
    assert torch.all(v >= k / 256.0) and torch.all(v < (k + 1) / 256.0)
    scaled = (k / 255.0).float()  # the zoo's [0, 1] convention
    v2 = T.dequantize(scaled, generator=torch.Generator().manual_seed(3))
    assert v2.dtype == torch.float32 and torch.equal(torch.floor(v2 * 256).long(), k)
    assert torch.equal(v2, T.dequantize(scaled, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError):
        T.dequantize(torch.tensor([0.5013]))  # not a level k/255
    with pytest.raises(ValueError):
        T.dequantize(torch.tensor([256]))


# ---------------------------------------------------------------------------------------------------- compositions
def _nice():
    return [T.AdditiveCoupling(16, [8], parity=0), T.AdditiveCoupling(16, [8], parity=1),
            T.AdditiveCoupling(16, [8], partition="half", parity=0), T.DiagonalScaling(16)]


def _realnvp():
    return [T.LogitTransform(0.05), _small_ac((1, 4, 4), "checkerboard", 0), _small_ac((1, 4, 4), "checkerboard", 1),
            T.Squeeze((1, 4, 4)), _small_ac((4, 2, 2), "channel", 0), _small_ac((4, 2, 2), "channel", 1),
            T.MultiScaleSplit((4, 2, 2), [_small_ac((2, 2, 2), "checkerboard", 0),
                                          _small_ac((2, 2, 2), "checkerboard", 1)])]


def _glow():
    level2 = [T.Squeeze((2, 2, 2)), T.ActNorm((8, 1, 1)), T.InvertibleConv1x1((8, 1, 1)),
              _small_ac((8, 1, 1), "channel", 0, "sigmoid")]
    return [T.Squeeze((1, 4, 4)), T.ActNorm((4, 2, 2)), T.InvertibleConv1x1((4, 2, 2)),
            _small_ac((4, 2, 2), "channel", 0, "sigmoid"),
            _small_ac((4, 2, 2), "channel", 0, "sigmoid"),  # Glow's learned prior of the factored-out half
            T.MultiScaleSplit((4, 2, 2), level2)]


@pytest.mark.parametrize("make", [_nice, _realnvp, _glow], ids=["NICE", "RealNVP", "Glow"])
def test_flow_log_prob_equals_change_of_variables(make):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    flow = make()
    modules = torch.nn.ModuleList(flow).double()
    base = dist.Normal(torch.zeros(16, dtype=torch.float64), torch.ones(16, dtype=torch.float64)).to_event(1)
    model = dist.TransformedDistribution(base, T.as_generative(flow))
    data = _unit((6, 16), gen) if isinstance(flow[0], T.LogitTransform) else 2.0 + _normal((6, 16), gen)
    model.log_prob(data)  # the first batch initialises the ActNorms
    with torch.no_grad():
        for p in modules.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))

    x = data[:4].reshape(2, 2, 16)
    log_prob = model.log_prob(x)
    assert log_prob.shape == (2, 2)

    def f(v):  # the flow's map alone, no log-dets
        for t in flow:
            v = t(v)
        return v

    flat = x.reshape(-1, 16)
    z = f(flat)
    jac = torch.autograd.functional.jacobian(f, flat, vectorize=True)
    logdet = torch.linalg.slogdet(torch.stack([jac[i, :, i, :] for i in range(4)])).logabsdet
    log_normal = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(log_prob.reshape(-1), log_normal + logdet, atol=1e-8, rtol=1e-8)

    z0 = base.sample((3,))
    sample = z0
    for t in model.transforms:  # base -> data
        sample = t(sample)
    assert sample.shape == (3, 16) and torch.isfinite(model.log_prob(sample)).all()
    torch.testing.assert_close(f(sample), z0, atol=1e-10, rtol=0)
