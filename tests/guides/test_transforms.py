"""Posterior flows (guides.transforms): exact log-determinants, inverses, Sylvester's Q and invertibility, amortization,
device/dtype agnosticism. Every family of ``FLOW_FAMILIES`` is checked, amortized and not, in float64 at random
parameters, with a batch of contexts and a leading particle dimension."""
import warnings

import pytest
import torch

import pyro.distributions as dist
from guides.transforms import (
    DIAG_BOUND,
    FLOW_FAMILIES,
    ConditionalOrthogonalSylvester,
    householder_product,
    make_conditional_flow,
    make_flow,
    orthogonalize,
    sylvester_h,
    sylvester_o,
    sylvester_t,
    conditional_sylvester_h,
    conditional_sylvester_o,
    conditional_sylvester_t,
)
from zoo.errors import ConfigError, UnknownNameError

D, C, B, S = 5, 3, 3, 2  # latent dim, context dim, contexts (data points), particles
FAMILIES = list(FLOW_FAMILIES)
INVERTIBLE = [n for n, f in FLOW_FAMILIES.items() if f.invertible]
NOT_INVERTIBLE = [n for n, f in FLOW_FAMILIES.items() if not f.invertible]
SYLVESTER = [n for n in FLOW_FAMILIES if n.startswith("sylvester")]
LAYERS = 2  # two steps, so the alternating orders (IAF, T-SNF) are both covered


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomize(module, seed, scale=0.5):
    """Move every parameter well away from its initial value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device))
    return module


def _steps(family, amortized, dtype=torch.float64, seed=0, **options):
    torch.manual_seed(seed)
    mods = make_conditional_flow(family, D, C, LAYERS, **options) if amortized else make_flow(family, D, LAYERS, **options)
    return [_randomize(m.to(dtype), seed + 1 + k) for k, m in enumerate(mods)]


def _transform(module, amortized, context):
    return module.condition(context) if amortized else module


def _inputs(dtype=torch.float64, device="cpu", seed=123):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(S, B, D, generator=g, dtype=dtype).to(device)
    h = torch.randn(B, C, generator=g, dtype=dtype).to(device)
    return z, h


@pytest.mark.parametrize("amortized", [False, True], ids=["plain", "amortized"])
@pytest.mark.parametrize("family", FAMILIES)
def test_log_det_matches_autograd_jacobian(family, amortized):
    z, h = _inputs()
    for module in _steps(family, amortized):
        t = _transform(module, amortized, h)
        y = t(z)
        ldj = t.log_abs_det_jacobian(z, y)
        assert y.shape == (S, B, D) and ldj.shape == (S, B)
        assert y.dtype == ldj.dtype == torch.float64
        for s in range(S):
            for b in range(B):
                # the map of data point b alone (context row b): the batched call must agree with it
                f = (lambda v, b=b: module.condition(h[b])(v)) if amortized else module
                torch.testing.assert_close(f(z[s, b]), y[s, b], rtol=0, atol=1e-12)
                jac = torch.autograd.functional.jacobian(f, z[s, b])
                sign, logabsdet = torch.linalg.slogdet(jac)
                assert sign != 0
                assert abs(logabsdet.item() - ldj[s, b].item()) < 1e-9, (family, s, b, logabsdet, ldj[s, b])
        z = y.detach()  # feed the next step realistic inputs


@pytest.mark.parametrize("amortized", [False, True], ids=["plain", "amortized"])
def test_orthogonal_sylvester_with_fewer_columns(amortized):
    """O-SNF with M < D: Sylvester's identity needs Q^T Q = I exactly; the log-det must still match."""
    torch.manual_seed(0)
    m = conditional_sylvester_o(D, C, num_ortho_vecs=2) if amortized else sylvester_o(D, num_ortho_vecs=2)
    module = _randomize(m.to(torch.float64), 7)
    z, h = _inputs()
    t = _transform(module, amortized, h)
    ldj = t.log_abs_det_jacobian(z, t(z))
    for s in range(S):
        for b in range(B):
            f = (lambda v, b=b: module.condition(h[b])(v)) if amortized else module
            ref = torch.linalg.slogdet(torch.autograd.functional.jacobian(f, z[s, b]))[1]
            assert abs(ref.item() - ldj[s, b].item()) < 1e-9


@pytest.mark.parametrize("amortized", [False, True], ids=["plain", "amortized"])
@pytest.mark.parametrize("family", INVERTIBLE)
def test_inverse_round_trip(family, amortized):
    z, h = _inputs()
    for module in _steps(family, amortized):
        y = _transform(module, amortized, h)(z)
        fresh = _transform(module, amortized, h)  # a new conditioned transform, or a cache defeated by .clone()
        x = fresh.inv(y.clone())
        torch.testing.assert_close(x, z, rtol=0, atol=1e-10)
        ldj_inv = fresh.inv.log_abs_det_jacobian(y, x)
        ldj = _transform(module, amortized, h).log_abs_det_jacobian(z, y)
        torch.testing.assert_close(ldj_inv, -ldj, rtol=0, atol=1e-10)
        z = y.detach()


@pytest.mark.parametrize("amortized", [False, True], ids=["plain", "amortized"])
@pytest.mark.parametrize("family", NOT_INVERTIBLE)
def test_no_inverse_but_own_samples_are_scored(family, amortized):
    z, h = _inputs()
    module = _steps(family, amortized)[0]
    t = _transform(module, amortized, h)
    y = t(z)
    assert t.inv(y) is z  # from the cache
    with pytest.raises((NotImplementedError, KeyError)):
        _transform(module, amortized, h).inv(y.clone())


@pytest.mark.parametrize("amortized", [False, True], ids=["plain", "amortized"])
@pytest.mark.parametrize("family", FAMILIES)
def test_flow_distribution_scores_its_samples(family, amortized):
    """As a guide uses it: push base samples through, then log_prob of the result (through the caches)."""
    z0, h = _inputs()
    mods = _steps(family, amortized)
    base = dist.Normal(torch.zeros(D, dtype=torch.float64), torch.ones(D, dtype=torch.float64)).to_event(1)
    base = base.expand((B,))  # conditional flows do not expand the base to the context's batch shape
    ts = [_transform(m, amortized, h) for m in mods]
    z, expected = z0, base.log_prob(z0)
    for t in ts:
        y = t(z)
        expected = expected - t.log_abs_det_jacobian(z, y)
        z = y
    lp = dist.TransformedDistribution(base, ts).log_prob(z)
    assert lp.shape == (S, B)
    torch.testing.assert_close(lp, expected, rtol=0, atol=1e-12)
    if amortized:
        cond = dist.ConditionalTransformedDistribution(base, mods).condition(h)
        sample = cond.rsample((S,))
        assert sample.shape == (S, B, D) and torch.isfinite(cond.log_prob(sample)).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_amortization_is_real(family):
    """Different contexts give different maps, and the output is differentiable in the context."""
    mods = _steps(family, amortized=True)
    z, h = _inputs()
    h = h.clone().requires_grad_(True)
    y, ldj = z, 0.0
    for m in mods:
        t = m.condition(h)
        out = t(y)
        ldj = ldj + t.log_abs_det_jacobian(y, out)
        y = out
    # the same z under the three contexts: the maps differ pairwise
    same_z = z[:, :1].expand(S, B, D)
    y2 = same_z
    for m in mods:
        y2 = m.condition(h)(y2)
    for i in range(B):
        for j in range(i + 1, B):
            assert (y2[:, i] - y2[:, j]).abs().max() > 1e-6, (family, i, j)
    (grad,) = torch.autograd.grad(y.sum() + (ldj.sum() if torch.is_tensor(ldj) else 0.0), h)
    assert grad.abs().sum(-1).min() > 0


def _run_all(mods, amortized, z, h, invertible):
    y, ldj = z, torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
    for m in mods:
        t = _transform(m, amortized, h)
        out = t(y)
        ldj = ldj + t.log_abs_det_jacobian(y, out)
        y = out
    if invertible:
        x = y.clone()
        for m in reversed(mods):
            x = _transform(m, amortized, h).inv(x)
        assert x.shape == z.shape and x.dtype == z.dtype and x.device == z.device
    return y, ldj


@pytest.mark.parametrize("amortized", [False, True], ids=["plain", "amortized"])
@pytest.mark.parametrize("family", FAMILIES)
def test_device_and_dtype_agnostic(family, amortized):
    """No tensor on a fixed device or with a fixed dtype: the flow follows its parameters to float64 (the global
    default staying float32) and to the meta device (which has no values, so any fixed-device tensor fails)."""
    assert torch.get_default_dtype() == torch.float32
    invertible = FLOW_FAMILIES[family].invertible
    torch.manual_seed(0)
    build = (lambda: make_conditional_flow(family, D, C, LAYERS)) if amortized else (lambda: make_flow(family, D, LAYERS))

    mods = [m.to(torch.float64) for m in build()]
    z, h = _inputs(torch.float64)
    y, ldj = _run_all(mods, amortized, z, h, invertible)
    assert y.dtype == ldj.dtype == torch.float64 and torch.isfinite(ldj).all()

    mods = [m.to("meta") for m in build()]
    z, h = torch.empty(S, B, D, device="meta"), torch.empty(B, C, device="meta")
    y, ldj = _run_all(mods, amortized, z, h, invertible)
    assert y.device.type == ldj.device.type == "meta"
    assert y.shape == (S, B, D) and ldj.shape == (S, B)


@pytest.mark.parametrize("amortized", [False, True], ids=["plain", "amortized"])
@pytest.mark.parametrize("family", FAMILIES)
def test_built_on_meta_device(family, amortized):
    """Constructed under ``torch.device("meta")`` (no values anywhere) and run there."""
    with torch.device("meta"):
        try:
            mods = make_conditional_flow(family, D, C, LAYERS) if amortized else make_flow(family, D, LAYERS)
        except RuntimeError as e:
            if "meta" in str(e) and family == "iaf":
                pytest.skip("Pyro's (Conditional)AutoRegressiveNN calls .item() in its constructor; "
                            "built elsewhere and moved, IAF runs on meta (test_device_and_dtype_agnostic)")
            raise
        z, h = torch.empty(S, B, D), torch.empty(B, C)
    y, ldj = _run_all(mods, amortized, z, h, FLOW_FAMILIES[family].invertible)
    assert y.device.type == ldj.device.type == "meta" and ldj.shape == (S, B)


@pytest.mark.parametrize(
    "build",
    [
        lambda: sylvester_o(D, num_ortho_vecs=3),
        lambda: sylvester_h(D, num_householder=3),
        lambda: sylvester_t(D, reverse=True),
        lambda: conditional_sylvester_o(D, C, num_ortho_vecs=3),
        lambda: conditional_sylvester_h(D, C, num_householder=3),
        lambda: conditional_sylvester_t(D, C, hidden_dims=[8]),
    ],
    ids=["o", "h", "t", "cond-o", "cond-h", "cond-t"],
)
def test_sylvester_built_on_meta_device(build):
    with torch.device("meta"):
        m = build()
        z, h = torch.empty(S, B, D), torch.empty(B, C)
    t = m.condition(h) if hasattr(m, "condition") else m
    y = t(z)
    ldj = t.log_abs_det_jacobian(z, y)
    assert y.device.type == "meta" and ldj.shape == (S, B)


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("dm", [(5, 5), (5, 2), (64, 64), (64, 16), (100, 50)])
def test_orthogonalize_gives_orthonormal_columns(dm, dtype, atol):
    d, m = dm
    g = torch.Generator().manual_seed(d * 1000 + m)
    raw = torch.randn(4, d, m, generator=g, dtype=torch.float64)
    raw[0, :, -1] = raw[0, :, 0] + 1e-3 * raw[0, :, -1]  # an ill-conditioned one (two columns almost equal)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converges: no "not converged" warning
        q = orthogonalize(raw.to(dtype))
    eye = torch.eye(m, dtype=dtype)
    assert (q.mT @ q - eye).abs().max() < atol
    # the polar factor: the closest orthonormal matrix, which the SVD gives too
    u, _, vh = torch.linalg.svd(raw.to(torch.float64), full_matrices=False)
    torch.testing.assert_close(q.to(torch.float64), u @ vh, rtol=0, atol=1e3 * atol)


def test_orthogonalize_warns_on_rank_deficient_input():
    raw = torch.randn(2, 6, 3, dtype=torch.float64)
    raw[1, :, 2] = 0.0
    with pytest.warns(RuntimeWarning, match="not converged"):
        orthogonalize(raw, max_iter=30)


def test_amortized_o_snf_q_is_orthonormal_per_data_point():
    m = _randomize(conditional_sylvester_o(D, C, num_ortho_vecs=3).to(torch.float64), 3)
    _, h = _inputs()
    q = m._params(h)[0]
    assert q.shape == (B, D, 3)
    assert (q.mT @ q - torch.eye(3, dtype=q.dtype)).abs().max() < 1e-12
    assert (q[0] - q[1]).abs().max() > 1e-3  # one Q per data point


@pytest.mark.parametrize("num_householder", [1, 3, 8])
def test_householder_product_is_orthogonal(num_householder):
    v = torch.randn(B, num_householder, D, dtype=torch.float64)
    q = householder_product(v)
    eye = torch.eye(D, dtype=torch.float64)
    assert (q.mT @ q - eye).abs().max() < 1e-12 and (q @ q.mT - eye).abs().max() < 1e-12
    torch.testing.assert_close(torch.linalg.det(q).abs(), torch.ones(B, dtype=torch.float64))
    # the product H_H ... H_1 of the reflections
    ref = eye.expand(B, D, D)
    for k in range(num_householder):
        u = v[:, k] / v[:, k].norm(dim=-1, keepdim=True)
        ref = (eye - 2 * u[:, :, None] * u[:, None, :]) @ ref
    torch.testing.assert_close(q, ref, rtol=0, atol=1e-12)
    m = _randomize(conditional_sylvester_h(D, C, num_householder=num_householder).to(torch.float64), 5)
    qc = m._params(_inputs()[1])[0]
    assert (qc.mT @ qc - eye).abs().max() < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("family", SYLVESTER)
def test_invertibility_constraint_under_extreme_hypernetwork_outputs(family, dtype):
    """1 + diag(R1) diag(R2) h' > 0 for every h' in [0, 1] even when tanh saturates, so log|det J| stays finite."""
    (m,) = make_conditional_flow(family, D, C)
    m = m.to(dtype)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(1e4)
    g = torch.Generator().manual_seed(0)
    h = torch.randn(64, C, generator=g).to(dtype)
    q, r1, r2, b = m._params(h)
    prod = r1.diagonal(dim1=-2, dim2=-1) * r2.diagonal(dim1=-2, dim2=-1)
    assert prod.min() < -0.99  # really extreme: tanh saturated and signs opposed
    assert (1 + prod.clamp(max=0)).min() > 0  # worst case h' = 1
    assert (1 + prod.clamp(max=0)).min() >= (1 - DIAG_BOUND**2) * (1 - 1e-3)
    # points whose preactivation is exactly 0 for the first coordinate (h' = 1 there): ldj still finite
    t = m.condition(h)
    z = torch.randn(2, 64, D, generator=g).to(dtype)
    ldj = t.log_abs_det_jacobian(z, t(z))
    assert torch.isfinite(ldj).all()
    # and the same for the non-amortized module with saturated raw diagonals
    (p,) = make_flow(family, D)
    p = p.to(dtype)
    with torch.no_grad():
        p.diag1.fill_(1e4)
        p.diag2.fill_(-1e4)
        p.b.zero_()
    zero = torch.zeros(3, D, dtype=dtype)  # preactivation 0: h' = 1 exactly
    ldj = p.log_abs_det_jacobian(zero, p(zero))
    assert torch.isfinite(ldj).all()
    expected = D * torch.log1p(torch.tensor(-(DIAG_BOUND**2), dtype=torch.float64))
    assert abs(ldj[0].item() - expected.item()) < 1e-3 * abs(expected.item())


def test_sylvester_t_alternates_and_iaf_reverses_order():
    plain = make_flow("sylvester-t", D, 3)
    cond = make_conditional_flow("sylvester-t", D, C, 3)
    assert [m.reverse for m in plain] == [False, True, False]
    assert [m.reverse for m in cond] == [False, True, False]
    iaf = make_conditional_flow("iaf", D, C, 2)
    assert iaf[0].nn.permutation.tolist() == list(range(D))
    assert iaf[1].nn.permutation.tolist() == list(reversed(range(D)))


def test_table_errors_and_options():
    with pytest.raises(UnknownNameError):
        make_flow("no-such-flow", D)
    with pytest.raises(ConfigError):
        make_conditional_flow("planar", D, C, num_ortho_vecs=2)
    with pytest.raises(ConfigError):
        make_flow("planar", D, num_layers=0)
    (m,) = make_conditional_flow("sylvester-o", D, C, num_ortho_vecs=2, hidden_dims=[16])
    assert isinstance(m, ConditionalOrthogonalSylvester) and m.num_ortho_vecs == 2
    assert len(make_flow("affine_autoregressive", D, 2)) == 2  # alias of iaf
    with pytest.raises(ValueError):
        sylvester_o(D, num_ortho_vecs=D + 1)
