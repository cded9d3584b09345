"""Issue 5's richer decoders and latents: convhvae, the PixelCNN models pixelvae / pixelhvae, the hyperspherical svae
with its vmf guide, the discretized logistic likelihoods, and the Frey faces loader.

* PixelCNN decoders: the one-pass log p(x|z) equals the sum of the per-pixel conditionals computed one pixel at a time
  (the network run on the prefix x_<i, the rest garbage); causality through the full model (the log-likelihood term
  of pixel i has zero gradient wrt the input pixels j >= i); sample() draws pixel by pixel.
* svae: the vmf guide samples on the sphere; the ELBO's KL term is the closed form KL(vMF || uniform) (computed here
  with scipy's Bessel functions), in the zoo's objective and in Pyro's TraceMeanField_ELBO; importance-sampled log p(x).
* discretized logistic: a pmf over the 256 levels through the likelihood module; bits/dim from evaluate.
* every new model x prior trains a few steps or is refused in one line; the CLI trains and evaluates each model.
"""
import json
import math
import os

import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch

from guides.base import GUIDES, build_guide
from inference.evaluation import importance_sample
from inference.importance import weight_terms
from inference.objectives import build_objective
from zoo.cli.assemble import model_options, register_all
from zoo.errors import ConfigError, DataError
from zoo.likelihoods import build_likelihood
from zoo.model import MODELS
from zoo.priors import PRIORS

register_all()

TINY = dict(latent_dim=2, hidden=(8,), conv_channels=4)
PIXEL_TINY = dict(TINY, cond_channels=3, pixel_hidden=8, pixel_layers=3, first_kernel=3)
SHAPE = (1, 4, 3)  # not square: rows and columns must not be mixed up
D = 12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(likelihood, n=3, d=D, seed=0):
    g = torch.Generator().manual_seed(seed)
    if likelihood == "bernoulli":
        return torch.bernoulli(torch.full((n, d), 0.5), generator=g)
    return torch.randint(0, 256, (n, d), generator=g).float() / 255


def _pixel_model(name, likelihood="bernoulli", **kw):
    return MODELS.build(name, D, image_shape=SHAPE, likelihood=likelihood, **{**PIXEL_TINY, **kw})


def _latents(model, n, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    if model.latent_sites()[0].name == "z":
        return {"z": torch.randn(n, model.latent_dim, generator=g, dtype=dtype)}
    return {"z2": torch.randn(n, model.latent_dim, generator=g, dtype=dtype),
            "z1": torch.randn(n, model.latent_dim1, generator=g, dtype=dtype)}


def _features(model, latents):
    return model.features(latents["z"]) if "z" in latents else model.features(latents["z1"], latents["z2"])


def _perturb(model):
    """Move every weight off its initialisation so no accidental zero hides a dependence."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))


# ------------------------------------------------------------------------------------------------ PixelCNN decoders


@pytest.mark.parametrize("likelihood", ["bernoulli", "discretized-logistic"])
@pytest.mark.parametrize("name", ["pixelvae", "pixelhvae"])
def test_one_pass_log_likelihood_is_the_sum_of_the_pixel_by_pixel_conditionals(name, likelihood):
    torch.manual_seed(0)
    model = _pixel_model(name, likelihood).double()
    _perturb(model)
    x = _data(likelihood).double()
    latents = _latents(model, x.shape[0])
    trace = poutine.trace(poutine.condition(model, data=latents)).get_trace(x)
    one_pass = trace.nodes["x"]["fn"].log_prob(x)  # (B,): log p(x | z) from the training/evaluation path
    h = _features(model, latents)
    by_pixel = torch.zeros_like(one_pass)
    for i in range(D):
        prefix = x.clone()
        prefix[:, i:] = torch.rand(x.shape[0], D - i, dtype=x.dtype)  # pixels i, i+1, ... are garbage
        params = model.decoder(h, prefix)
        by_pixel += model.likelihood(params).base_dist.log_prob(x)[:, i]
    assert one_pass.shape == (x.shape[0],)
    assert torch.allclose(one_pass, by_pixel, atol=1e-10, rtol=0)


@pytest.mark.parametrize("likelihood", ["bernoulli", "discretized-logistic"])
@pytest.mark.parametrize("name", ["pixelvae", "pixelhvae"])
def test_decoder_is_causal_through_the_full_model(name, likelihood):
    """d log p(x_i | x_<i, z) / d x_j = 0 for every j >= i (and for the other images), through model(x)."""
    torch.manual_seed(0)
    model = _pixel_model(name, likelihood).double()
    _perturb(model)
    x = _data(likelihood, n=2).double().requires_grad_(True)
    latents = _latents(model, 2)
    trace = poutine.trace(poutine.condition(model, data=latents)).get_trace(x)
    per_pixel = trace.nodes["x"]["fn"].base_dist.log_prob(x.detach())  # the input x carries the gradient
    seen_past = 0
    for i in range(D):
        (grad,) = torch.autograd.grad(per_pixel[0, i], x, retain_graph=True)
        assert torch.equal(grad[0, i:], torch.zeros(D - i, dtype=x.dtype)), (i, grad[0])
        assert torch.equal(grad[1], torch.zeros(D, dtype=x.dtype))
        seen_past += int((grad[0, :i] != 0).any())
    assert seen_past >= D - 2  # the past does matter (not a vacuous test)


@pytest.mark.parametrize("name", ["pixelvae", "pixelhvae"])
def test_sample_draws_pixel_by_pixel(name):
    torch.manual_seed(0)
    model = _pixel_model(name)
    calls = []
    model.decoder.pixelcnn.register_forward_hook(lambda mod, inp, out: calls.append(tuple(inp[0].shape)))
    like = torch.zeros(1, D)
    x = model.sample(5, like, mean=False)
    assert x.shape == (5, D) and set(x.unique().tolist()) <= {0.0, 1.0}
    _, h, w = SHAPE
    assert len(calls) == h * w  # one pass per pixel ...
    assert [c[2] for c in calls] == [r + 1 for r in range(h) for _ in range(w)]  # ... on the rows drawn so far
    calls.clear()
    mean = model.sample(5, like, mean=True)  # E[x_i | x_<i, z] of a drawn x: one more pass
    assert len(calls) == h * w + 1 and mean.shape == (5, D) and bool(((mean > 0) & (mean < 1)).all())


def test_sequential_sample_is_the_one_pass_model_conditionals():
    """The pixel drawn at i comes from the same conditional the one-pass likelihood scores: with every conditional
    pushed to near-certainty by the network's bias, the sample is the fixed point argmax of the one-pass output."""
    torch.manual_seed(0)
    model = _pixel_model("pixelvae").double()
    _perturb(model)
    with torch.no_grad():
        model.decoder.pixelcnn.head[-1].weight.mul_(1e3)  # logits +-huge: draws are deterministic argmaxes
    h = _features(model, {"z": torch.randn(3, 2, dtype=torch.float64)})
    x = model.decoder.sample(h, model.likelihood, mean=False)
    logits = model.decoder(h, x)
    assert torch.equal((logits > 0).double(), x)


# ------------------------------------------------------------------------------------------------ conv models, shapes


@pytest.mark.parametrize("name", ["convhvae", "pixelvae", "pixelhvae"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (1, 28, 20)])
def test_conv_models_fit_image_sizes_and_particles(name, shape):
    torch.manual_seed(0)
    d = math.prod(shape)
    model = MODELS.build(name, d, image_shape=shape, **(PIXEL_TINY if "pixel" in name else TINY))
    guide = build_guide("diagonal", model)
    x = torch.bernoulli(torch.full((3, d), 0.3))
    assert guide.encoder(x).shape == (3, 8)
    terms = weight_terms(model, guide, x, None, 4)
    assert terms.log_w.shape == (4, 3) and bool(torch.isfinite(terms.log_w).all())
    assert model.sample(2, x).shape == (2, d)


@pytest.mark.parametrize("name", ["convhvae", "pixelvae", "pixelhvae"])
def test_conv_models_refuse_vector_data_in_one_line(name):
    with pytest.raises(ConfigError, match="needs image data") as info:
        MODELS.build(name, 10, image_shape=None)
    assert "\n" not in str(info.value)


def test_chunked_decoding_equals_one_chunk():
    """Evaluation-sized inputs are decoded in chunks of bounded memory, with the same result."""
    torch.manual_seed(0)
    model = _pixel_model("pixelhvae", "discretized-logistic").double()
    x = _data("discretized-logistic", n=7).double()
    h = _features(model, _latents(model, 7))
    whole = model.decoder(h, x)
    model.decoder._rows = model.decoder.conditioning._rows = 3
    assert torch.allclose(model.decoder(h, x), whole, atol=1e-12)


PRIOR_SPECS = [e.name + (":2" if e.arg else "") for e in PRIORS]


@pytest.mark.parametrize("prior", PRIOR_SPECS)
@pytest.mark.parametrize("name", ["convhvae", "pixelvae", "pixelhvae", "svae"])
def test_every_new_model_prior_pair_trains_a_few_steps_or_is_refused_in_one_line(name, prior):
    torch.manual_seed(0)
    from zoo.data.base import Dataset, Split

    x = torch.bernoulli(torch.full((12, 64), 0.3))
    data = Dataset("tiny", Split(x), Split(x[:4]), Split(x[:4]), "static", (1, 8, 8))
    sizes = {**(PIXEL_TINY if "pixel" in name else TINY), "latent_dim": 3}
    try:
        opts = model_options(name, {**sizes, "prior": prior, "likelihood": "auto"}, data)
        model = MODELS.build(name, 64, image_shape=(1, 8, 8), **opts)
        guide = build_guide(MODELS.entry(name).meta.get("guide", "diagonal"), model)
    except ConfigError as e:
        assert "\n" not in str(e)
        assert name == "svae" and prior != "standard" and "no swappable prior" in str(e)
        return
    for part in model.modules():
        if hasattr(part, "init_from_data"):
            part.init_from_data(x)
    params = list({id(p): p for p in list(model.parameters()) + list(guide.parameters())}.values())
    opt = torch.optim.Adam(params, lr=1e-3)
    objective = build_objective("elbo")
    for _ in range(3):
        loss = objective.loss(model, guide, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    assert model.sample(2, x).shape == (2, 64)  # latents drawn from the prior (pixel models: x pixel by pixel)


# ------------------------------------------------------------------------------------------------ svae and vmf


def _svae(latent_dim=3, data_dim=10):
    model = MODELS.build("svae", data_dim, latent_dim=latent_dim, hidden=(8,))
    return model, build_guide("vmf", model)


def test_vmf_guide_samples_lie_on_the_sphere():
    torch.manual_seed(0)
    model, guide = _svae()
    x = torch.bernoulli(torch.full((6, 10), 0.5))
    z = poutine.trace(guide).get_trace(x).nodes["z"]["value"]
    assert z.shape == (6, 3) and torch.allclose(z.norm(dim=-1), torch.ones(6), atol=1e-6)
    terms = weight_terms(model, guide, x, None, 5)  # under a particle plate too
    zk = terms.latents["z"]
    assert zk.shape == (5, 6, 3) and torch.allclose(zk.norm(dim=-1), torch.ones(5, 6), atol=1e-6)
    loc, kappa = guide.site_parameters(guide.sites[0], guide.encoder(x))
    assert torch.allclose(loc.norm(dim=-1), torch.ones(6), atol=1e-6) and bool((kappa > 1).all())


def _closed_form_kl(kappa: np.ndarray, m: int) -> np.ndarray:
    """KL(vMF(mu, kappa) || U(S^{m-1})) = kappa A_m + log C_m + log |S^{m-1}|, from scipy's Bessel functions."""
    from scipy.special import gammaln, ive

    v = m / 2 - 1
    log_iv = np.log(ive(v, kappa)) + kappa
    a_m = ive(m / 2, kappa) / ive(v, kappa)
    log_c = v * np.log(kappa) - (m / 2) * np.log(2 * np.pi) - log_iv
    log_area = np.log(2) + (m / 2) * np.log(np.pi) - gammaln(m / 2)
    return kappa * a_m + log_c + log_area


@pytest.mark.parametrize("m", [3, 10])
def test_svae_elbo_kl_term_is_the_closed_form_kl_to_the_uniform(m):
    torch.manual_seed(0)
    model, guide = _svae(latent_dim=m)
    with torch.no_grad():
        for p in guide.parameters():
            p.add_(torch.randn_like(p))  # concentrations well away from 1
    x = torch.bernoulli(torch.full((5, 10), 0.5))
    _, kappa = guide.site_parameters(guide.sites[0], guide.encoder(x))
    expected = float(_closed_form_kl(kappa.detach().double().numpy(), m).sum())

    def recon(seed):
        pyro.set_rng_seed(seed)
        gt = poutine.trace(guide).get_trace(x)
        mt = poutine.trace(poutine.replay(model, trace=gt)).get_trace(x)
        return mt.nodes["x"]["fn"].log_prob(x).sum().item()

    pyro.set_rng_seed(7)
    ours = build_objective("elbo").loss(model, guide, x).item()  # the zoo's elbo (lean trace/replay loss)
    pyro.set_rng_seed(7)
    pyros = pyro.infer.TraceMeanField_ELBO().differentiable_loss(model, guide, x).item()
    r = recon(7)
    assert ours + r == pytest.approx(expected, rel=1e-5, abs=1e-5)  # -ELBO = KL - E[log p(x|z)], one sample
    assert pyros + r == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_svae_importance_sampled_log_likelihood():
    torch.manual_seed(0)
    model, guide = _svae()
    x = torch.bernoulli(torch.full((7, 10), 0.5))
    out = importance_sample(model, guide, x, num_samples=30, batch_size=4)
    assert out["log_px"].shape == (7,) and np.isfinite(out["log_px"]).all()
    assert (out["log_px"] >= out["elbo"] - 1e-9).all()  # log-mean-exp >= mean of the same log-weights
    assert np.allclose(out["elbo"], out["recon"] - out["kl"], atol=1e-4)
    # the log-weights: log p(x|z) - log|S^{m-1}| - log vMF(z); the KL column is E_q[log q] + log|S^{m-1}| >= 0
    assert (out["kl"] > -1e-4).all()


def test_every_other_guide_refuses_svae_and_vmf_refuses_real_latents_in_one_line():
    model, _ = _svae()
    for entry in GUIDES:
        if entry.name == "vmf":
            continue
        with pytest.raises(ConfigError) as info:
            build_guide(entry.name + (":2" if entry.arg else ""), model)
        assert "\n" not in str(info.value)
        if entry.name == "diagonal" or entry.arg:  # the Gaussian guides and the flows: refused by support
            assert "sphere" in str(info.value)
    vae = MODELS.build("vae", 10, latent_dim=3, hidden=(8,))
    with pytest.raises(ConfigError, match="sphere") as info:
        build_guide("vmf", vae)
    assert "\n" not in str(info.value)


def test_svae_needs_two_dimensions_and_defaults_to_the_vmf_guide():
    with pytest.raises(ConfigError, match=">= 2"):
        MODELS.build("svae", 10, latent_dim=1)
    assert MODELS.entry("svae").meta["guide"] == "vmf"


# ------------------------------------------------------------------------------------------------ discretized logistic


@pytest.mark.parametrize("spec", ["discretized-logistic", "discretized-mix-logistic:3"])
def test_discretized_likelihood_is_a_pmf_over_the_256_levels(spec):
    torch.manual_seed(0)
    lik = build_likelihood(spec, 5)
    out = 2 * torch.randn(2, lik.params_per_dim * 5, dtype=torch.float64)
    out[0, 5:10] = -20.0  # very small scales (clamped at -7) ...
    out[1, :5] = 3.0  # ... and locations far outside [0, 1]
    p = lik(out)
    assert p.event_shape == (5,) and p.batch_shape == (2,)
    levels = (torch.arange(256, dtype=torch.float64) / 255)[:, None, None].expand(256, 2, 5)
    per_pixel = p.base_dist.log_prob(levels).exp().sum(0)
    assert torch.allclose(per_pixel, torch.ones(2, 5, dtype=torch.float64), atol=1e-9)
    assert lik.mean(out).shape == (2, 5)
    assert p.sample().shape == (2, 5)


def test_discretized_likelihood_refuses_data_off_the_8bit_grid():
    lik = build_likelihood("discretized-logistic", 3)
    lik.check_data(torch.tensor([[0.0, 17 / 255, 1.0]]))
    with pytest.raises(DataError, match="off that grid") as info:
        lik.check_data(torch.tensor([[0.0, 1 / 16, 1.0]]), "the training split")
    assert "\n" not in str(info.value) and "the training split" in str(info.value)


# ------------------------------------------------------------------------------------------------ Frey faces


def _write_frey(folder, n=30, seed=0):
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    ff = rng.integers(0, 256, size=(560, n), dtype=np.uint8)
    os.makedirs(folder, exist_ok=True)
    savemat(os.path.join(folder, "frey_rawface.mat"), {"ff": ff})
    return ff


def test_frey_reads_the_mat_file_in_its_real_format(tmp_path):
    from zoo.data import load_dataset

    ff = _write_frey(tmp_path)
    ds = load_dataset("frey", root=str(tmp_path))
    assert ds.image_shape == (1, 28, 20) and ds.dim == 560 and ds.binarize == "none"
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 30 and len(ds.valid) == len(ds.test) == 3
    every = torch.cat([ds.train.x, ds.valid.x, ds.test.x])
    images = {tuple(np.round(row.numpy() * 255).astype(int)) for row in every}
    # column i of ff is image i in row-major order: pixel (r, c) = ff[20 r + c, i]
    assert images == {tuple(ff[:, i].astype(int)) for i in range(30)}
    build_likelihood("discretized-logistic", 560).check_data(every)  # on the k/255 grid


def test_frey_missing_offline_names_the_file_and_folder(tmp_path, monkeypatch):
    import zoo.data.torchvision_sets as tv
    from zoo.data import load_dataset

    monkeypatch.setattr(tv, "network_available", lambda *a, **k: False)
    with pytest.raises(DataError) as info:
        load_dataset("frey", root=str(tmp_path / "empty"))
    msg = str(info.value)
    assert "\n" not in msg and "frey_rawface.mat" in msg and str((tmp_path / "empty").resolve()) in msg
    from scipy.io import savemat

    savemat(str(tmp_path / "frey_rawface.mat"), {"faces": np.zeros((560, 4), np.uint8)})
    with pytest.raises(DataError, match="no variable 'ff'"):
        load_dataset("frey", root=str(tmp_path))


# ------------------------------------------------------------------------------------------------ the command line


FAST = ["--epochs", "1", "--batch-size", "128", "--latent-dim", "2", "--hidden", "16", "--no-progress",
        "--device", "cpu"]


def _run(argv, capsys):
    from zoo.cli.main import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


CLI_MODELS = ["convhvae", "pixelvae", "pixelhvae", "svae"]


@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory):
    """One epoch of each new model on digits from the command line (binarized: Bernoulli likelihood)."""
    from zoo.cli.main import main

    runs = {}
    for name in CLI_MODELS:
        out = str(tmp_path_factory.mktemp("runs") / name)
        assert main(["train", "--model", name, "--data", "digits", "--out", out] + FAST) == 0, name
        runs[name] = out
    return runs


@pytest.mark.parametrize("name", CLI_MODELS)
def test_cli_trains_one_epoch_on_digits_and_evaluates(name, digits_runs, capsys):
    out = digits_runs[name]
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["guide"] == ("vmf" if name == "svae" else "diagonal")  # svae: the model's own guide by default
    assert cfg["model"]["options"]["hidden"] == [16]
    code, stdout, err = _run(["evaluate", out, "--samples", "10", "--no-progress", "--device", "cpu"], capsys)
    assert code == 0, err
    ev = json.load(open(os.path.join(out, "eval.json")))
    assert np.isfinite(ev["nll"]["mean"]) and ev["nll"]["mean"] <= ev["neg_elbo"]["mean"] + 1e-6
    assert ev["bits_per_dim"]["mean"] == pytest.approx(ev["nll"]["mean"] / (64 * math.log(2)))


def test_cli_refuses_svae_with_a_gaussian_guide_or_a_prior(tmp_path, capsys):
    for extra, fragment in ((["--guide", "diagonal"], "sphere"), (["--prior", "mog:2"], "no swappable prior")):
        code, _, err = _run(["train", "--model", "svae", "--data", "digits", "--out", str(tmp_path / "r")]
                            + extra + FAST, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and fragment in lines[0], err


def test_cli_grey_levels_with_the_discretized_logistic_in_bits_per_dim(tmp_path, capsys):
    """vae and convhvae on 8-bit 28x20 faces (a small frey_rawface.mat): a pmf over the levels, so bits/dim =
    NLL / (D ln 2) and it lies below 8 bits once anything is learned (here: at least not far above)."""
    _write_frey(tmp_path / "data", n=40)
    for model in ("vae", "convhvae"):
        out = str(tmp_path / model)
        code, _, err = _run(["train", "--model", model, "--data", "frey", "--data-root", str(tmp_path / "data"),
                             "--likelihood", "discretized-logistic", "--out", out] + FAST, capsys)
        assert code == 0, err
        cfg = json.load(open(os.path.join(out, "config.json")))
        assert cfg["data"]["binarize"] in (None, "none") and cfg["model"]["options"]["likelihood"] == \
            "discretized-logistic"
        code, stdout, err = _run(["evaluate", out, "--samples", "5", "--no-progress", "--device", "cpu"], capsys)
        assert code == 0 and "bits/dim" in stdout, err
        ev = json.load(open(os.path.join(out, "eval.json")))
        assert ev["bits_per_dim"]["mean"] == pytest.approx(ev["nll"]["mean"] / (560 * math.log(2)))
        assert 0 < ev["bits_per_dim"]["mean"] < 12
    code, _, err = _run(["train", "--model", "vae", "--data", "digits", "--binarize", "none", "--likelihood",
                         "discretized-logistic", "--out", str(tmp_path / "bad")] + FAST, capsys)
    assert code == 2 and "off that grid" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("name", ["pixelhvae", "convhvae"])
def test_cli_samples(name, digits_runs, capsys):
    out = digits_runs[name]
    code, _, err = _run(["sample", out, "-n", "4", "--device", "cpu"], capsys)
    assert code == 0 and os.path.exists(os.path.join(out, "samples.png")), err
