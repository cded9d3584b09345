"""M1+M2 of Kingma, Rezende, Mohamed & Welling 2014: M2 whose data are M1's latent features.

A trained M1 (an ``m1`` or ``vae`` run with the ``diagonal`` guide: ``zoo train --model m1+m2 --m1-run DIR``) gives
the features z1 = E_q[z1 | x] (its encoder and mean head), and M2 models them:

    y ~ Cat(1/C),  z2 ~ N(0, I),  z1 | y, z2 ~ N(f([z2, onehot y]), diag sigma^2)   (``gaussian-learned`` by default)

with q(y | z1), q(z2 | z1, y) as in M2. M1's encoder and decoder are copied into this model when training starts and
stay frozen (``requires_grad=False``), so the run directory is self-contained. The observed site ``x`` of this model is
the feature vector: its NLL / ELBO in eval.json are in nats of the M1 feature space, not of the pixels (the test error
is comparable with every other model). Samples and figures are decoded through M1's decoder (its mean).

Defaults: M2's weighting of the classification term (alpha N / (r L) per labelled occurrence, see :mod:`zoo.m2`) with
alpha = 10, z 3 (M2's reason: a z too small to hold the class makes the decoder read y), hidden 400, ReLU. Measured
(mnist5k, 100 labels, 50 epochs, M1 = ``zoo train --model m1 --labels 100 --epochs 30`` with the same seed; test error
at the epoch the unlabelled validation bound selects, seeds 0 / 1):

* z 20, alpha 50: 14.2 % (seed 0; 19.8 % after 20 epochs); z 3, alpha 50: 11.4 / 15.8 % (16.0 % after 20 epochs,
  seed 0): z 3 is faster, as for M2;
* with z 3 the features' classifier learns faster the less the labels weigh: alpha 200: 18.2 % (seed 1); alpha 50:
  15.8 %; alpha 10: 9.6 / 12.4 %, below M2 alone (15.6 / 14.0 %, the paper's ordering), and still falling at epoch
  50. M2 itself keeps alpha 200: its own alpha 50 was level with 200 at 20 epochs and, with z 5, drifted up.
"""
from typing import Optional, Sequence, Tuple

import pyro.poutine as poutine
import torch
from torch import nn

from zoo.errors import ConfigError
from zoo.likelihoods import build_likelihood
from zoo.m2 import M2
from zoo.model import MODELS
from zoo.networks.mlp import MLP


class FrozenM1(nn.Module):
    """M1's encoder body, the mean half of its Gaussian head, its decoder and likelihood; never trained here."""

    def __init__(self, data_dim, latent_dim, hidden, activation, likelihood, sigma):
        super().__init__()
        self.encoder = MLP(data_dim, tuple(hidden), None, act=activation)
        self.head = nn.Linear(self.encoder.out_features, 2 * latent_dim)
        self.likelihood = build_likelihood(likelihood, data_dim, sigma=sigma)
        self.decoder = MLP(latent_dim, tuple(reversed(tuple(hidden))), data_dim * self.likelihood.params_per_dim,
                           act=activation)
        self.latent_dim = latent_dim
        self.requires_grad_(False)

    def train(self, mode: bool = True):  # always in eval mode: frozen (and no param-store warnings while training)
        return super().train(False)

    def features(self, x):
        return self.head(self.encoder(x))[..., :self.latent_dim]

    def decode_mean(self, z1):
        return self.likelihood.mean(self.decoder(z1))


class FeatureMap(nn.Module):
    """x -> M1 features -> ``net``: how the guide's encoder and classifier see x."""

    def __init__(self, m1: FrozenM1, net: nn.Module):
        super().__init__()
        self.m1, self.net = m1, net
        self.out_features = net.out_features

    def forward(self, x):
        return self.net(self.m1.features(x))


@MODELS.register("m1+m2", paper="Kingma, Rezende, Mohamed & Welling 2014 (M1+M2)",
                 summary="M2 on the posterior means of a trained M1 (--m1-run DIR)",
                 guide="semi-supervised", objective="enum", discrete_latents=True, label_repeat="auto",
                 latent_dim=3)
class M1M2(M2):
    """M2 on a frozen M1's features; see the module docstring."""

    observes_features = True  # eval.json: NLL in nats of the feature space, no bits/dim

    def __init__(self, data_dim: int, num_classes: int = 10, latent_dim: int = 3, hidden: Sequence[int] = (400,),
                 activation: str = "relu", prior: str = "standard", alpha: float = 10.0,
                 feature_likelihood: str = "gaussian-learned", feature_sigma: float = 1.0,
                 m1_latent_dim: int = 50, m1_hidden: Sequence[int] = (400,), m1_activation: str = "relu",
                 m1_likelihood: str = "bernoulli", m1_sigma: float = 0.1, m1_run: Optional[str] = None,
                 image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__(data_dim, num_classes=num_classes, latent_dim=latent_dim, hidden=hidden,
                         likelihood=feature_likelihood, activation=activation, prior=prior, sigma=feature_sigma,
                         alpha=alpha, image_shape=image_shape, obs_dim=m1_latent_dim)
        self.m1_run = m1_run
        self.m1 = FrozenM1(data_dim, m1_latent_dim, m1_hidden, m1_activation, m1_likelihood, m1_sigma)

    def observed(self, x):
        return self.m1.features(x)

    def make_encoder(self):
        return FeatureMap(self.m1, MLP(self.obs_dim, self.hidden, None, act=self.activation))

    def make_classifier(self):
        return FeatureMap(self.m1, MLP(self.obs_dim, self.hidden, self.num_classes, act=self.activation))

    def check_data(self, x, where: str = "the data"):
        from zoo.errors import DataError

        if x.dim() != 2 or x.shape[1] != self.data_dim:
            raise DataError(f"{where} has shape {tuple(x.shape)}, but the model expects (N, {self.data_dim})")
        self.m1.likelihood.check_data(x, where)

    def load_m1(self, m1_model: nn.Module, m1_guide: nn.Module):
        """Copy a trained M1 (VAE with the diagonal guide) into the frozen part."""
        try:
            self.m1.encoder.load_state_dict(m1_guide.encoder.state_dict())
            self.m1.head.load_state_dict(m1_guide.gaussian.heads["z"].state_dict())
            self.m1.decoder.load_state_dict(m1_model.decoder.state_dict())
            self.m1.likelihood.load_state_dict(m1_model.likelihood.state_dict())
        except (AttributeError, KeyError, RuntimeError) as e:
            raise ConfigError(f"--m1-run: that run is not an M1 (a vae/m1 with the diagonal guide) of this shape "
                              f"({type(e).__name__}: {str(e).splitlines()[0]})")
        self.m1.requires_grad_(False)

    # -------------------------------------------------------------------------------------- data-space helpers
    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.m1.decode_mean(self.likelihood.mean(self.decoder_out(z, y)))

    @torch.no_grad()
    def decode_mean(self, trace_sites: dict) -> torch.Tensor:
        return self.m1.decode_mean(trace_sites["x"]["fn"].mean)

    @torch.no_grad()
    def sample(self, n: int, like: torch.Tensor, mean: bool = True) -> torch.Tensor:
        placeholder = like.new_zeros(n, self.data_dim)
        trace = poutine.trace(poutine.block(self, hide_types=["param"])).get_trace(placeholder)
        fn = trace.nodes["x"]["fn"]
        z1 = fn.mean if mean else fn.sample()
        out = self.m1.decoder(z1)
        return self.m1.likelihood.mean(out) if mean else self.m1.likelihood(out).sample()
