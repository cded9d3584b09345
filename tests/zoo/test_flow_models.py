"""Flow density models (NICE, RealNVP, Glow, MAF): exact log-likelihood against an independent change of variables,
the zoo's evaluation on models without latents, dequantization, bits/dim, temperature sampling, errors."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd.functional import jacobian

import inference.mle  # noqa: F401  (registers the mle objective)
from guides.empty import EmptyGuide
from inference.evaluation import importance_sample
from inference.objectives import build_objective
from zoo.errors import ConfigError, DataError
from zoo.flow_models import (MAF, NICE, Glow, NonFiniteLogLikelihood, RealNVP, fixed_uniform_noise, interpolate)
from zoo.transforms import bits_per_dim

IMG = (1, 4, 4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")

VECTOR_MODELS = {
    "nice-logistic": lambda: NICE(2, hidden=(8, 8)),
    "nice-normal": lambda: NICE(2, hidden=(8,), base="normal"),
    "maf": lambda: MAF(2, hidden=(8,), flow_depth=3),
    "maf-batchnorm": lambda: MAF(2, hidden=(8,), flow_depth=2, batchnorm=True),
    "realnvp-vector": lambda: RealNVP(2, hidden=(8,), flow_depth=3),
}
IMAGE_MODELS = {
    "glow": lambda: Glow(16, hidden=(4,), flow_depth=2, num_blocks=1, image_shape=IMG),
    "realnvp-image": lambda: RealNVP(16, hidden=(4,), flow_depth=2, num_blocks=1, image_shape=IMG),
    "maf-8bit": lambda: MAF(16, hidden=(16,), flow_depth=2, image_shape=IMG),
    "nice-8bit": lambda: NICE(16, hidden=(8,), image_shape=IMG),
}
ALL = {**VECTOR_MODELS, **IMAGE_MODELS}


def images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 16), generator=g).double() / 255


def prepared(name):
    """The model in float64, eval mode, parameters moved off their initial values (zero-initialised output layers
    would otherwise make couplings the identity), actnorm initialised from a batch."""
    torch.manual_seed(1)
    model = ALL[name]().double()
    x = images(8, 1) if name in IMAGE_MODELS else torch.randn(8, 2, dtype=torch.float64)
    model.train()
    model.log_prob(x)  # the data-dependent actnorm initialisation (Glow) and batch-norm statistics
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    model.eval()
    return model, x


def independent_log_density(model, v):
    """log p_base(f(v)) + log|det df/dv| with df/dv from autograd on the composed map and the base written out."""
    out = []
    for row in v:
        z = model.encode(row.unsqueeze(0)).squeeze(0)
        jac = jacobian(lambda u: model.encode(u.unsqueeze(0)).squeeze(0), row)
        logdet = torch.linalg.slogdet(jac)[1]
        if model.base == "normal":
            base = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum()
        else:  # standard logistic: log sigma(z) + log sigma(-z)
            base = (-F.softplus(-z) - F.softplus(z)).sum()
        out.append(base + logdet)
    return torch.stack(out)


@pytest.mark.parametrize("name", list(ALL))
def test_log_likelihood_is_the_change_of_variables(name):
    model, x = prepared(name)
    v = model.preprocess(x)
    lp = model.log_prob(v, preprocessed=True)
    ref = independent_log_density(model, v[:4])
    assert torch.allclose(lp[:4], ref, atol=1e-8, rtol=1e-10), (lp[:4], ref)
    # the Pyro model scores exactly that at its observed site
    import pyro.poutine as poutine

    tr = poutine.trace(model).get_trace(x)
    site = tr.nodes["x"]
    assert torch.equal(site["value"], v)
    assert torch.allclose(site["fn"].log_prob(site["value"]), lp)
    assert model.latent_sites() == []


@pytest.mark.parametrize("name", list(ALL))
def test_zoo_evaluation_gives_the_exact_log_likelihood(name):
    model, x = prepared(name)
    guide = EmptyGuide(model)
    exact = model.log_prob(x).detach()
    for k in (1, 2):
        res = importance_sample(model, guide, x, None, num_samples=k, batch_size=3)
        assert np.allclose(res["log_px"], exact.numpy(), atol=1e-9)
        assert np.allclose(res["elbo"], exact.numpy(), atol=1e-9)
        assert res["posterior_means"] is None
    # both training objectives are exactly -sum log p(v) (eval mode: the same fixed dequantization)
    for spec in ("elbo", "mle"):
        loss = build_objective(spec).loss(model, guide, x)
        assert torch.allclose(loss, -exact.sum(), atol=1e-8)


def test_dequantization_train_and_eval():
    model = NICE(16, hidden=(8,), image_shape=IMG)
    x = images(6).float()
    k = torch.round(x * 255)
    model.train()
    a, b = model.preprocess(x), model.preprocess(x)
    assert not torch.equal(a, b)  # fresh noise at every training step
    model.eval()
    c = model.preprocess(x)
    for v in (a, c):
        assert bool(((v * 256 >= k) & (v * 256 < k + 1)).all())
    # the evaluation noise is fixed per point: the same in any batch, at any position, at every call
    assert torch.equal(c, model.preprocess(x))
    assert torch.equal(c[3:4], model.preprocess(x[3:4]))
    assert torch.equal(c.flip(0), model.preprocess(x.flip(0)))
    u = fixed_uniform_noise(images(500, 3).float())
    assert 0 <= float(u.min()) and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.01
    # vector (toy) data are not dequantized
    toy = MAF(2, hidden=(4,))
    assert toy.dequantization_bins is None and torch.equal(toy.preprocess(x[:, :2]), x[:, :2])
    assert model.dequantization_bins == 256


def test_bits_per_dim_through_evaluate_run(tmp_path):
    """evaluate_run's bits/dim is -log p(v)/(D ln 2) + 8 for a model of dequantized 8-bit data."""
    from inference.training import TrainConfig
    from zoo.cli.assemble import load_run
    from zoo.cli.runs import evaluate_run, make_config, train_run

    rng = np.random.default_rng(0)
    path = str(tmp_path / "tiny.npz")
    np.savez(path, x=rng.integers(0, 256, (60, 4, 4)).astype(np.uint8))
    train = TrainConfig(epochs=1, batch_size=16, seed=0, progress=False)
    config = make_config("nice", "none", "elbo", path, "none", {"hidden": [8], "flow_depth": 2}, train, device="cpu")
    out = str(tmp_path / "run")
    train_run(config, out, progress=False)
    summary = evaluate_run(out, num_samples=5, progress=False)
    comps = load_run(out, torch.device("cpu"))
    with torch.no_grad():
        lp = comps.model.log_prob(comps.data.test.x).double()
    expected = float(bits_per_dim(lp, 16).mean())
    assert summary["bits_per_dim"]["mean"] == pytest.approx(expected, rel=1e-5)
    assert summary["bits_per_dim"]["mean"] == pytest.approx(summary["nll"]["mean"] / (16 * math.log(2)) + 8, rel=1e-9)
    assert summary["protocol"]["num_samples"] == 1  # exact likelihood: one sample is the answer


@pytest.mark.parametrize("name", ["maf", "nice-logistic", "realnvp-vector", "glow", "realnvp-image"])
def test_sampling_temperature(name):
    model, x = prepared(name)
    like = x
    zero = model.sample(3, like, temperature=0.0)
    mapped = model.decode(torch.zeros(1, model.data_dim, dtype=torch.float64))
    assert torch.allclose(zero, mapped.expand(3, -1))
    assert torch.allclose(model.encode(zero), torch.zeros_like(zero), atol=1e-6)  # and f sends it back to zero
    torch.manual_seed(0)
    hot = model.sample(200, like, temperature=1.0)
    torch.manual_seed(0)
    cold = model.sample(200, like, temperature=0.5)
    assert torch.allclose(model.encode(cold), 0.5 * model.encode(hot), atol=1e-5)  # z = T * eps
    path = interpolate(model, x[0], x[1], steps=5)
    assert path.shape == (5, model.data_dim)
    v = model.preprocess(x[:2])
    assert torch.allclose(path[0], v[0], atol=1e-6) and torch.allclose(path[-1], v[1], atol=1e-6)


def test_nan_is_an_error():
    model, x = prepared("maf")
    with torch.no_grad():
        model.flow_modules[0].arn.layers[-1].bias.fill_(float("nan"))
    with pytest.raises(NonFiniteLogLikelihood), torch.no_grad():
        model.log_prob(x)
    with pytest.raises(FloatingPointError):
        importance_sample(model, EmptyGuide(model), x, None, num_samples=1)
    # a training step is not checked (no host sync per step): the Trainer stops at the epoch's end (test_training)
    assert not torch.isfinite(build_objective("elbo").loss(model, EmptyGuide(model), x))
    with pytest.raises(ValueError):
        bits_per_dim(torch.tensor([1.0, float("nan")]), 2)


def test_guides_objectives_and_data_errors():
    from guides.base import build_guide
    from zoo.vae import VAE

    flow = MAF(2, hidden=(4,))
    with pytest.raises(ConfigError, match="--guide none"):
        build_guide("diagonal", flow)
    vae = VAE(4, latent_dim=2, hidden=(4,))
    with pytest.raises(ConfigError, match="without latent variables"):
        EmptyGuide(vae)
    with pytest.raises(ConfigError, match="without latent variables"):
        build_objective("mle").loss(vae, build_guide("diagonal", vae), torch.rand(3, 4).round())
    with pytest.raises(ConfigError, match="image data"):
        Glow(16)
    with pytest.raises(ConfigError, match="image"):
        RealNVP(16, architecture="image")
    with pytest.raises(ConfigError, match="num-scales"):
        Glow(16, image_shape=IMG, num_scales=3)
    img_model = NICE(16, hidden=(8,), image_shape=IMG)
    with pytest.raises(DataError, match="--binarize none"):
        img_model.check_data(torch.rand(5, 16).round())
    with pytest.raises(DataError, match="8-bit"):
        img_model.check_data(torch.rand(5, 16))
    img_model.check_data(images(5).float())


def test_glow_actnorm_is_initialised_from_the_first_training_batch():
    from zoo.transforms import ActNorm

    model = Glow(16, hidden=(4,), flow_depth=1, image_shape=IMG)
    norms = [m for m in model.modules() if isinstance(m, ActNorm)]
    assert norms and not any(bool(m.initialized) for m in norms)
    model.train()
    loss = build_objective("elbo").loss(model, EmptyGuide(model), images(32).float())
    assert torch.isfinite(loss)
    assert all(bool(m.initialized) for m in norms)


def test_flow_figures_write_pngs(tmp_path):
    from PIL import Image

    from reports.flow_figures import density_grid, flow_figures, interpolation_strips, temperature_samples

    toy, x = prepared("realnvp-vector")
    toy.float()
    pts = x.float()
    paths = [temperature_samples(toy, pts, str(tmp_path / "t2d.png"), n=50),
             density_grid(toy, pts, str(tmp_path / "d.png"), resolution=40)]
    img, xi = prepared("glow")
    img.float()
    paths += [temperature_samples(img, xi.float(), str(tmp_path / "timg.png"), n=4),
              interpolation_strips(img, xi.float(), str(tmp_path / "i.png"), pairs=2, steps=4)]
    paths += flow_figures(img, xi.float(), str(tmp_path / "all"))
    assert len(paths) == 6
    for p in paths:
        assert Image.open(p).size[0] > 50
    with pytest.raises(ValueError):
        density_grid(img, xi.float(), str(tmp_path / "no.png"))


def test_batched_interpolation_matches_single():
    model, x = prepared("maf-8bit")
    both = interpolate(model, x[:3], x[3:6], steps=4)
    assert both.shape == (3, 4, 16)
    assert torch.allclose(both[1], interpolate(model, x[1], x[4], steps=4), atol=1e-9)
    sph = interpolate(model, x[0], x[1], steps=3, spherical=True)
    v = model.preprocess(x[:2])
    assert torch.allclose(sph[0], v[0], atol=1e-6) and torch.allclose(sph[-1], v[1], atol=1e-6)


def test_cli_trains_evaluates_and_samples_flows_without_naming_a_guide(tmp_path, capsys):
    import json
    import os

    from zoo.cli.main import main

    rng = np.random.default_rng(1)
    path = str(tmp_path / "pix.npz")
    np.savez(path, x=rng.integers(0, 256, (40, 4, 4)).astype(np.uint8))
    out = str(tmp_path / "glow")
    fast = ["--epochs", "1", "--batch-size", "16", "--no-progress", "--device", "cpu"]
    assert main(["train", "--model", "glow", "--data", path, "--hidden", "4", "--flow-depth", "1", "--out", out]
                + fast) == 0
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["guide"] == "none" and cfg["data"]["binarize"] == "none"
    assert cfg["model"]["options"] == {"hidden": [4], "flow_depth": 1}
    assert main(["evaluate", out, "--no-progress"]) == 0
    assert "bits/dim" in capsys.readouterr().out
    assert main(["sample", out, "-n", "4"]) == 0
    toy = str(tmp_path / "maf-moons")
    assert main(["train", "--model", "maf", "--data", "moons", "--hidden", "8", "--out", toy, "--epochs", "1",
                 "--batch-size", "2000", "--no-progress", "--device", "cpu"]) == 0
    assert main(["train", "--model", "realnvp", "--data", "moons", "--hidden", "8", "--flow-depth", "2", "--out",
                 str(tmp_path / "rnvp"), "--epochs", "1", "--batch-size", "2000", "--no-progress",
                 "--device", "cpu"]) == 0
    assert main(["evaluate", toy, "--no-progress"]) == 0
    assert "bits/dim" not in capsys.readouterr().out  # 2-D real data: no pixels, no bits/dim
