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


# ------------------------------------------------------------------------------------------------ 2. VampPrior float32
def test_diagonal_normal_mixture_is_accurate_in_float32_far_from_the_origin():
    """500 components in 40-D at |m| = 3, s = 0.01, points next to a component: the expanded square lost ~1 nat."""
    from zoo.learned_priors import DiagonalNormalMixture

    g = torch.Generator().manual_seed(0)
    k, d = 500, 40
    loc = 3.0 * torch.randint(0, 2, (k, d), generator=g).double().mul(2).sub(1)  # every |m_kd| = 3
    scale = 0.01 * torch.exp(0.1 * torch.randn(k, d, generator=g, dtype=torch.float64))
    z = loc[torch.randint(k, (4, 32), generator=g)] + 0.01 * torch.randn(4, 32, d, generator=g, dtype=torch.float64)
    logits = torch.randn(k, generator=g, dtype=torch.float64)
    z32, loc32, scale32, logits32 = (t.float().requires_grad_() for t in (z, loc, scale, logits))
    lp32 = DiagonalNormalMixture(logits32, loc32, scale32).log_prob(z32)
    # the reference: float64, from the same (float32) numbers, straight from the definition
    z64, loc64, scale64, logits64 = (t.detach().double().requires_grad_() for t in (z32, loc32, scale32, logits32))
    comps = torch.distributions.Normal(loc64, scale64).log_prob(z64.unsqueeze(-2)).sum(-1)
    lp64 = torch.logsumexp(comps + torch.log_softmax(logits64, -1), -1)
    assert lp32.shape == (4, 32)
    assert float((lp32.double() - lp64).detach().abs().max()) < 1e-3
    # the gradients are written by hand: they match float64 autograd to float32 precision
    w = torch.randn(4, 32, generator=g, dtype=torch.float64)
    grads32 = torch.autograd.grad((lp32 * w.float()).sum(), [z32, loc32, scale32, logits32])
    grads64 = torch.autograd.grad((lp64 * w).sum(), [z64, loc64, scale64, logits64])
    for a, b in zip(grads32, grads64):
        assert float((a.double() - b).abs().max()) <= 1e-4 * float(b.abs().max())


# ------------------------------------------------------------------------------------------------ 3. dead parameters
def _assert_every_parameter_learns(module, loss):
    loss.backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and bool((p.grad != 0).any()), f"{type(module).__name__}.{name} gets no gradient"


@pytest.mark.parametrize("shape", [(1, 3, 2), 1])
def test_invertible_conv_with_one_channel_has_no_dead_parameters_and_is_a_scaling(shape):
    from zoo.transforms import InvertibleConv1x1

    torch.manual_seed(0)
    t = InvertibleConv1x1(shape).double()
    with torch.no_grad():
        t.log_abs_s.fill_(0.3)
    d = t.dim
    x = torch.randn(4, d, dtype=torch.float64)
    y = t(x)
    ldj = t.log_abs_det_jacobian(x, y)
    s = float(t.sign_s) * math.exp(0.3)
    torch.testing.assert_close(y, s * x, rtol=1e-15, atol=0)  # W = s
    torch.testing.assert_close(ldj, torch.full((4,), d * 0.3, dtype=torch.float64))  # H W log|s|
    torch.testing.assert_close(t.inv(y), x)
    assert [n for n, _ in t.named_parameters()] == ["log_abs_s"]
    _assert_every_parameter_learns(t, (y * torch.randn_like(y)).sum() + ldj.sum())


def _flow_loss(t, d, context=None):
    torch.manual_seed(1)
    x = torch.randn(6, d, dtype=torch.float64)
    if context is not None:
        t = t.condition(context)
    y = t(x)
    return (y * torch.randn_like(y)).sum() + t.log_abs_det_jacobian(x, y).sum()


@pytest.mark.parametrize("kind,d,m", [("o", 5, 1), ("o", 1, None), ("h", 1, None), ("t", 1, None)])
def test_sylvester_edge_sizes_have_no_dead_parameters(kind, d, m):
    from guides.transforms import sylvester as S

    torch.manual_seed(0)
    options = {"num_ortho_vecs": m} if kind == "o" else {}
    plain = getattr(S, f"sylvester_{kind}")(d, **options).double()
    _assert_every_parameter_learns(plain, _flow_loss(plain, d))
    # amortized: every output of the hypernetwork feeds the map (its weight rows all get a gradient)
    cond = getattr(S, f"conditional_sylvester_{kind}")(d, 3, **options).double()
    context = torch.randn(6, 3, dtype=torch.float64)
    _flow_loss(cond, d, context).backward()
    rows = cond.nn.net[-1].weight.grad.abs().sum(-1)
    assert bool((rows > 0).all()), f"hypernetwork outputs {torch.nonzero(rows == 0).flatten().tolist()} are unused"


def test_sylvester_with_one_column_is_the_planar_map():
    """M = 1: x + q r1 tanh(r2 q^T x + b), q a unit vector, r1 r2 scalars, and its log-det (checked by autograd)."""
    from guides.transforms.sylvester import DIAG_BOUND, OrthogonalSylvester

    torch.manual_seed(0)
    t = OrthogonalSylvester(4, num_ortho_vecs=1).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    q = t.q[:, 0] / t.q[:, 0].norm()
    r1, r2 = DIAG_BOUND * torch.tanh(t.diag1), DIAG_BOUND * torch.tanh(t.diag2)
    pre = r2 * (x @ q) + t.b
    expected = x + (r1 * torch.tanh(pre))[:, None] * q
    torch.testing.assert_close(t(x), expected)
    jac = torch.stack([torch.autograd.functional.jacobian(t, x[i]) for i in range(3)])
    torch.testing.assert_close(t.log_abs_det_jacobian(x, t(x)), torch.linalg.slogdet(jac)[1])


# ------------------------------------------------------------------------------------------------ 5. logit domain
def _steps(start: torch.Tensor, towards: torch.Tensor, n: int) -> list:
    out = [start]
    for _ in range(n):
        out.append(torch.nextafter(out[-1], towards))
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("alpha", [0.0, 1e-6, 0.05])
def test_logit_transform_domain_is_open_and_the_map_finite_strictly_inside(alpha, dtype):
    import mpmath

    from zoo.transforms import LogitTransform

    t = LogitTransform(alpha)
    c = alpha / (1.0 - 2.0 * alpha)
    lo, hi = torch.tensor(-c, dtype=dtype), torch.tensor(1.0 + c, dtype=dtype)
    big, small = torch.tensor(2.0, dtype=dtype), torch.tensor(-1.0, dtype=dtype)
    # a few floats either side of both endpoints, 0 and 1, and a grid inside
    edge = torch.stack(_steps(lo, small, 3)[1:] + _steps(lo, big, 4) + _steps(hi, small, 4) + _steps(hi, big, 3)[1:])
    grid = torch.linspace(0.0, 1.0, 101, dtype=dtype)
    x = torch.cat([edge, torch.tensor([0.0, 1.0], dtype=dtype), grid])
    inside = t.domain.base_constraint.check(x)
    assert not bool(t.domain.base_constraint.check(torch.stack([lo, small, big]).to(dtype)).any())
    if dtype == torch.float64 or alpha == 0.0:  # the exact endpoints are representable: both are outside
        assert not bool(t.domain.base_constraint.check(hi))
    if alpha == 0.0:
        assert not bool(inside[-103]) and not bool(inside[-102])  # 0 and 1 themselves
    y = t(x.unsqueeze(-1)).squeeze(-1)
    ldj = t.log_abs_det_jacobian(x.unsqueeze(-1), y.unsqueeze(-1))
    # finite exactly where the domain says the map is defined, log-det included
    assert torch.equal(torch.isfinite(y), inside)
    assert bool(torch.isfinite(ldj[inside]).all())
    # and right: logit(alpha + (1 - 2 alpha) x) to 50 digits, on the grid of [0, 1] (0 and 1 too, when inside)
    mpmath.mp.dps = 50
    a = mpmath.mpf(alpha)
    pts = [(i, mpmath.mpf(float(v))) for i, v in enumerate(x.tolist()) if bool(inside[i]) and 0.0 <= float(v) <= 1.0]
    ref = torch.tensor([float(mpmath.log(a + (1 - 2 * a) * v) - mpmath.log(1 - a - (1 - 2 * a) * v)) for _, v in pts],
                       dtype=torch.float64)
    got = y[[i for i, _ in pts]].double()
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(got, ref, rtol=tol, atol=tol)


def test_logit_transform_validation_rejects_the_endpoints_with_the_open_interval():
    import pyro.distributions as dist

    from zoo.transforms import LogitTransform

    flow = dist.TransformedDistribution(dist.Normal(torch.zeros(3), 1.0).to_event(1), [LogitTransform(0.0).inv],
                                        validate_args=True)
    assert torch.isfinite(flow.log_prob(torch.tensor([1e-30, 0.5, 1.0 - 2 ** -24])))
    for bad in ([0.0, 0.5, 0.7], [0.2, 0.5, 1.0]):
        with pytest.raises(ValueError, match=r"OpenInterval\(lower_bound=0\.0, upper_bound=1\.0\)"):
            flow.log_prob(torch.tensor(bad))


# ------------------------------------------------------------------------------------------------ 4. stale caches
def _flow_guide_names():
    import guides.flows  # noqa: F401  (registers the flow guides)
    from guides.base import GUIDES

    return [e.name for e in GUIDES if e.arg == "K"]


def _flow_guide(name):
    from guides.base import build_guide
    from zoo.vae import VAE

    torch.manual_seed(0)
    model = VAE(10, latent_dim=3, hidden=(6,)).double()
    guide = build_guide(f"{name}:2", model).double()
    with torch.no_grad():  # away from the initial values (identity-like steps would hide staleness)
        for p in guide.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model, guide


def _step(params, loss):
    opt = torch.optim.SGD(params, lr=0.1)
    opt.zero_grad()
    loss.backward()
    opt.step()


@pytest.mark.parametrize("name", _flow_guide_names())
def test_flow_guide_steps_recompute_a_fixed_input_after_an_optimizer_step(name):
    from guides.transforms import FLOW_FAMILIES

    model, guide = _flow_guide(name)
    site = guide.sites[0]
    h = guide.encoder(torch.rand(4, 10, dtype=torch.float64)).detach()  # a fixed context
    z0 = torch.randn(4, 3, dtype=torch.float64)  # a fixed input
    w = torch.randn(4, 3, dtype=torch.float64)
    steps = guide.flows[site.name]
    conditioned = [f.condition(h) for f in steps]
    for t in conditioned:
        y1 = t(z0)
        _step(guide.parameters(), (y1 * w).sum() + t.log_abs_det_jacobian(z0, y1).sum())
        y2 = t(z0)
        ldj2 = t.log_abs_det_jacobian(z0, y2)
        ((y2 * w).sum() + ldj2.sum()).backward()  # a second backward, through the second call's own graph
        fresh = [f.condition(h) for f in steps][conditioned.index(t)]  # a transform that never saw z0
        y_fresh = fresh(z0)
        assert not torch.allclose(y2, y1)
        torch.testing.assert_close(y2, y_fresh, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(ldj2, fresh.log_abs_det_jacobian(z0, y_fresh), rtol=1e-12, atol=1e-12)
    # the guide's flow scoring a fixed z through its inverse: fresh after a step (invertible flows); a flow without an
    # inverse scores its own sample, but refuses it after a step rather than return the old value
    q = guide.site_distribution(site, h)
    base = torch.distributions.Independent(torch.distributions.Normal(q.base_dist.base_dist.loc.detach(),
                                                                      q.base_dist.base_dist.scale.detach()), 1)
    flow = torch.distributions.TransformedDistribution(base, q.transforms)
    if FLOW_FAMILIES[name].invertible:
        z = torch.randn(4, 3, dtype=torch.float64)
        lp1 = flow.log_prob(z)
        _step(guide.parameters(), -lp1.sum())
        lp2 = flow.log_prob(z)
        lp2.sum().backward()
        fresh = torch.distributions.TransformedDistribution(base, [f.condition(h) for f in steps])
        torch.testing.assert_close(lp2, fresh.log_prob(z), rtol=1e-12, atol=1e-12)
        assert not torch.allclose(lp2, lp1)
    else:
        z = flow.rsample()
        lp1 = flow.log_prob(z)
        _step(guide.parameters(), -lp1.sum())
        with pytest.raises((KeyError, NotImplementedError)):
            flow.log_prob(z)


@pytest.mark.parametrize("name", _flow_guide_names())
def test_plain_flow_steps_recompute_a_fixed_input_after_an_optimizer_step(name):
    from guides.transforms import make_flow

    torch.manual_seed(0)
    (t,) = make_flow(name, 3)
    t = t.double()
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.3 * torch.randn_like(p))
    z0 = torch.randn(4, 3, dtype=torch.float64)
    w = torch.randn(4, 3, dtype=torch.float64)
    y1 = t(z0)
    _step(t.parameters(), (y1 * w).sum() + t.log_abs_det_jacobian(z0, y1).sum())
    y2 = t(z0)
    ldj2 = t.log_abs_det_jacobian(z0, y2)
    ((y2 * w).sum() + ldj2.sum()).backward()
    assert not torch.allclose(y2, y1)
    torch.testing.assert_close(y2, t._call(z0), rtol=1e-12, atol=1e-12)  # the map itself, no cache involved
    # the log-det after an in-place change of the parameters, for the same (x, y) pair: the new one
    with torch.no_grad():
        for p in t.parameters():
            p.mul_(1.1)
    y3 = t._call(z0)
    ldj_fresh = t.log_abs_det_jacobian(z0, y3)
    torch.testing.assert_close(t.log_abs_det_jacobian(z0, y2), ldj_fresh, rtol=1e-12, atol=1e-12)


def test_flow_prior_log_density_of_a_fixed_z_is_fresh_after_an_optimizer_step():
    from zoo.priors import build_prior

    torch.manual_seed(0)
    prior = build_prior("flow:2", 3).double()
    z = torch.randn(5, 3, dtype=torch.float64)
    like = torch.zeros(5, 1, dtype=torch.float64)

    def by_hand():  # u = f_2(f_1(z)) with f(x) = mu(x) + exp(log s(x)) x, as MAF layers; log N(u) + sum log s
        u, ldj = z, 0.0
        for layer in prior.layers:
            mean, log_scale = layer.arn(u)
            log_scale = log_scale.clamp(layer.log_scale_min_clip, layer.log_scale_max_clip)
            u, ldj = mean + log_scale.exp() * u, ldj + log_scale.sum(-1)
        return torch.distributions.Normal(0.0, 1.0).log_prob(u).sum(-1) + ldj

    lp1 = prior(5, like).log_prob(z)
    torch.testing.assert_close(lp1, by_hand())
    _step(prior.parameters(), -lp1.sum())
    lp2 = prior(5, like).log_prob(z)
    lp2.sum().backward()  # the second call's own graph
    assert not torch.allclose(lp2, lp1)
    torch.testing.assert_close(lp2, by_hand(), rtol=1e-12, atol=1e-12)


def test_model_space_bijections_of_a_guide_are_fresh_for_a_parameter_input():
    """The reshape + biject_to maps a guide puts above its flows (a positive (2, 3) latent) on an input that is itself
    being optimised: the second call maps the updated values, and the inverse of an output is the caller's input."""
    from torch.distributions import constraints

    from guides.base import _model_space_transforms
    from zoo.latents import LatentSite

    site = LatentSite("tau", 6, shape=(2, 3), constraint=constraints.positive)
    transforms = _model_space_transforms(site)
    assert len(transforms) == 2

    def forward(v):
        for t in transforms:
            v = t(v)
        return v

    u = torch.nn.Parameter(torch.randn(4, 6, dtype=torch.float64))
    y1 = forward(u)
    _step([u], y1.sum())
    y2 = forward(u)
    y2.sum().backward()
    torch.testing.assert_close(y2, u.detach().exp().reshape(4, 2, 3), rtol=0, atol=0)
    v = y2
    for t in reversed(transforms):
        v = t.inv(v)
    assert v is u  # looked up, not recomputed: a non-invertible flow underneath finds its own output


@pytest.mark.parametrize("name", _flow_guide_names())
def test_one_elbo_evaluation_runs_each_flow_step_forward_once(name, monkeypatch):
    """Sampling z_T and scoring it in log q: every step's log-det comes from its forward pass (no second pass, no
    inverse), as before the cache change."""
    import pyro

    model, guide = _flow_guide(name)
    calls = {}
    classes = {type(f.condition(torch.zeros(1, guide.context_dim, dtype=torch.float64)))
               for f in guide.flows[guide.sites[0].name]}
    for cls in classes:
        for method in ("_call", "_inverse"):
            original = getattr(cls, method)

            def counted(self, v, _original=original, _key=(cls.__name__, method)):
                calls[_key] = calls.get(_key, 0) + 1
                return _original(self, v)

            monkeypatch.setattr(cls, method, counted)
    x = torch.bernoulli(torch.rand(4, 10, dtype=torch.float64))
    pyro.infer.Trace_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, x).backward()
    forward = sum(n for (c, m), n in calls.items() if m == "_call")
    inverse = sum(n for (c, m), n in calls.items() if m == "_inverse")
    assert (forward, inverse) == (2, 0), calls  # two steps (name:2), one forward pass each
