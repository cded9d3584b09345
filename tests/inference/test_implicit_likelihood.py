"""AIS for implicit generators with a Gaussian observation model (Wu et al. 2017): a linear generator x = W z + b
with noise sigma is a linear-Gaussian model, log p_sigma(x) = log N(x; b, W W^T + sigma^2 I) exactly."""
import pyro
import pyro.distributions as dist
import pytest
import torch

from inference.implicit_likelihood import (GaussianObservationModel, evaluate_implicit_ais, parse_sigma,
                                           select_sigma)
from zoo.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class LinearGenerator(torch.nn.Module):
    implicit = True
    max_plate_nesting = 1

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.W, self.b = torch.randn(4, 2, generator=g), torch.randn(4, generator=g)

    def forward(self, x, y=None):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            return pyro.sample("x", dist.Delta(z @ self.W.T + self.b, event_dim=1), obs=x)

    def exact_log_px(self, x, sigma):
        cov = self.W.double() @ self.W.double().T + sigma ** 2 * torch.eye(4, dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b.double(), covariance_matrix=cov).log_prob(x.double())

    def simulate(self, n, sigma, seed):
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n, 2, generator=g) @ self.W.T + self.b + sigma * torch.randn(n, 4, generator=g)


def test_ais_of_the_generator_with_gaussian_noise_matches_the_exact_log_likelihood():
    gen = LinearGenerator()
    x = gen.simulate(6, 0.5, seed=1)
    pyro.set_rng_seed(0)
    part = evaluate_implicit_ais(gen, x, None, {"steps": 1000, "chains": 8, "leapfrog": 3, "observation_sigma": 0.5})
    exact = -gen.exact_log_px(x, 0.5).mean().item()
    assert part["observation_sigma"] == 0.5 and "given" in part["observation_model"] and part["start"] == "prior"
    assert abs(part["nll"]["mean"] - exact) < 0.05, (part["nll"], exact)


def test_sigma_is_chosen_on_validation_data_as_the_one_that_generated_them():
    """Data made with noise 0.5 are best explained by sigma = 0.5 of the grid: a smaller sigma cannot reach them, a
    larger one spreads the density too thin."""
    gen = LinearGenerator()
    pyro.set_rng_seed(0)
    sigma, table = select_sigma(gen, gen.simulate(20, 0.5, seed=2), steps=300, chains=4, leapfrog=3,
                                grid=(0.1, 0.5, 2.0))
    assert sigma == 0.5 and [r["sigma"] for r in table] == [0.1, 0.5, 2.0]
    nll = {r["sigma"]: r["valid_nll"] for r in table}
    assert nll[0.5] < nll[2.0] and nll[0.5] < nll[0.1]


def test_bad_input_is_one_line():
    with pytest.raises(ConfigError, match="auto or a positive number"):
        parse_sigma("-1")
    with pytest.raises(ConfigError, match="auto or a positive number"):
        parse_sigma("wide")
    assert parse_sigma("auto") is None and parse_sigma("0.05") == 0.05
    with pytest.raises(ConfigError, match="positive number"):
        GaussianObservationModel(LinearGenerator(), 0.0)

    def not_a_point_mass(x, y=None):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(4), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    with pytest.raises(ConfigError, match="point mass"):
        GaussianObservationModel(not_a_point_mass, 0.1)(torch.zeros(3, 4))


def test_zoo_evaluate_gives_a_gan_an_ais_log_likelihood_with_its_observation_noise(tmp_path, capsys):
    """Through the CLI: a GAN evaluated with --estimator ais:T gets eval.json's ais with the stated sigma (or one
    chosen on the validation split from the grid), printed beside 'NLL none'; a likelihood model refuses the option."""
    import json

    from zoo.cli.main import main

    run = str(tmp_path / "gan")
    assert main(["train", "--model", "gan", "--objective", "gan-ns", "--data", "digits", "--binarize", "none",
                 "--hidden", "16", "--latent-dim", "2", "--epochs", "1", "--no-progress", "--device", "cpu",
                 "--out", run]) == 0
    assert main(["evaluate", run, "--estimator", "ais:4", "--chains", "2", "--leapfrog", "2", "--observation-sigma",
                 "0.3", "--quality-samples", "0", "--no-progress", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    ev = json.load(open(tmp_path / "gan" / "eval.json"))
    assert ev["nll"] is None and ev["ais"]["observation_sigma"] == 0.3 and ev["ais"]["start"] == "prior"
    assert "observation_sigma_selection" not in ev["ais"] and "NLL (AIS, T=4)" in text and "N(G(z), 0.3^2 I)" in text
    assert main(["evaluate", run, "--estimator", "ais:3", "--chains", "2", "--leapfrog", "1", "--quality-samples", "0",
                 "--no-progress", "--device", "cpu"]) == 0
    ev = json.load(open(tmp_path / "gan" / "eval.json"))
    table = ev["ais"]["observation_sigma_selection"]
    assert [r["sigma"] for r in table] == [0.01, 0.02, 0.05, 0.1, 0.2]
    assert ev["ais"]["observation_sigma"] == min(table, key=lambda r: r["valid_nll"])["sigma"]

    vae = str(tmp_path / "vae")
    assert main(["train", "--data", "digits", "--hidden", "16", "--latent-dim", "2", "--epochs", "1", "--no-progress",
                 "--device", "cpu", "--out", vae]) == 0
    capsys.readouterr()
    assert main(["evaluate", vae, "--estimator", "ais:2", "--observation-sigma", "0.1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "has its own likelihood" in err
