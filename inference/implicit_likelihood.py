r"""A log-likelihood for implicit generators: the generator with a Gaussian observation model, estimated by AIS.

An implicit generator x = G(z), z ~ p(z) (a GAN; the zoo's site ``x`` is a point mass Delta(G(z))) has no density.
Wu, Burda, Salakhutdinov & Grosse 2017 ("On the quantitative analysis of decoder-based generative models") give it
one by adding Gaussian observation noise of a stated variance,

    p_sigma(x) = \int p(z) N(x; G(z), sigma^2 I) dz,

and estimate log p_sigma(x) by annealed importance sampling from the prior (:mod:`inference.ais`), as for any
decoder-based model. sigma is part of the model being scored, not of the estimator: Wu et al. choose it on the
validation set, and so does ``sigma="auto"`` here (the grid value whose AIS log-likelihood of 20 validation points
is highest), and eval.json records the choice and the grid. Numbers for different sigma are
not comparable, nor with the likelihood models' NLL (their observation models differ).
"""
import math
from typing import Iterable, Optional

import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger

from zoo.errors import ConfigError

SIGMA_GRID = (0.01, 0.02, 0.05, 0.1, 0.2)


class _GaussianObservation(Messenger):
    """Replaces the point mass of the site ``x`` by N(G(z), sigma^2 I) over the same event dimensions."""

    def __init__(self, sigma: float, site: str = "x"):
        super().__init__()
        self.sigma, self.site = float(sigma), site

    def _process_message(self, msg):
        if msg["type"] != "sample" or msg["name"] != self.site:
            return
        fn = msg["fn"]
        if not isinstance(fn, dist.Delta):
            raise ConfigError(f"a Gaussian observation model replaces the point mass Delta(G(z)) of site "
                              f"{self.site!r}; this model's site is a {type(fn).__name__}")
        msg["fn"] = dist.Normal(fn.v, self.sigma).to_event(fn.event_dim)


class GaussianObservationModel:
    """``model`` (an implicit generator) with x ~ N(G(z), sigma^2 I) in place of x = G(z): a Pyro model with a
    density, for :class:`inference.ais.AnnealedImportanceSampler` (annealed from the prior)."""

    def __init__(self, model, sigma: float):
        if not (sigma > 0 and math.isfinite(sigma)):
            raise ConfigError(f"the Gaussian observation noise sigma must be a positive number, got {sigma!r}")
        self.model, self.sigma = model, float(sigma)
        self.max_plate_nesting = getattr(model, "max_plate_nesting", 1)

    def __call__(self, x, y=None):
        with _GaussianObservation(self.sigma):
            return self.model(x, y)


def parse_sigma(text) -> Optional[float]:
    """``auto`` -> None (chosen on the validation split); a positive number -> that sigma; else one line."""
    if text in (None, "auto"):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float("nan")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"--observation-sigma must be auto or a positive number such as 0.05, got {text!r}")
    return value


def select_sigma(model, valid_x: torch.Tensor, steps: int, chains: int, leapfrog: int, points: int = 20,
                 grid: Iterable[float] = SIGMA_GRID) -> tuple:
    """Wu et al.'s choice: the sigma of ``grid`` whose AIS log-likelihood (the same T, from the prior) of ``points``
    validation points is highest; the same T because a shorter schedule is looser for the small sigma (whose
    posterior is the sharpest) and would favour the large ones. Returns (sigma, [{"sigma", "valid_nll"}...])."""
    from inference.ais import AnnealedImportanceSampler

    x = valid_x[:points]
    table = []
    for sigma in grid:
        sampler = AnnealedImportanceSampler(GaussianObservationModel(model, sigma), None,
                                            num_steps=steps, num_chains=chains, leapfrog=leapfrog)
        log_px = sampler.log_likelihood(x)["log_px"]
        table.append({"sigma": float(sigma), "valid_nll": float(-log_px.mean())})
    best = min(table, key=lambda r: r["valid_nll"] if math.isfinite(r["valid_nll"]) else float("inf"))
    return best["sigma"], table


def evaluate_implicit_ais(model, test_x, valid_x, ais: dict, batch_size: int = 100, progress=None) -> dict:
    """eval.json's ``ais`` for an implicit generator: sigma (given, or chosen on ``valid_x``), then AIS on the test
    points (and BDMC when asked) of the model with that observation noise."""
    from inference.ais import evaluate_ais

    sigma = ais.get("observation_sigma")
    selection = None
    if sigma is None:
        sigma, selection = select_sigma(model, valid_x, ais["steps"], ais.get("chains", 16), ais.get("leapfrog", 10))
    wrapped = GaussianObservationModel(model, sigma)
    part, _ = evaluate_ais(wrapped, None, test_x, None, ais["steps"], ais.get("chains", 16), ais.get("leapfrog", 10),
                           batch_size, ais.get("bdmc") or 0, progress=progress)
    part["observation_sigma"] = sigma
    part["observation_model"] = (f"x ~ N(G(z), {sigma:g}^2 I) in place of the point mass x = G(z) (Wu et al. 2017); "
                                 + ("sigma chosen on the validation split" if selection else "sigma given")
                                 + "; not comparable with other observation models' NLL")
    if selection:
        part["observation_sigma_selection"] = selection
    return part
