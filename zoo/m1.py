"""M1 of Kingma, Rezende, Mohamed & Welling 2014: a VAE trained on all data (labels unused), then a classifier fitted on
the posterior means E_q[z|x] of the labelled points.

The generative model is the zoo's VAE (:mod:`zoo.vae`), trained with any guide and objective. After training (the
best-validation weights), :meth:`M1.after_training` fits a multinomial logistic regression on the standardised posterior
means of the labelled training points (y >= 0): full-batch L-BFGS on the cross-entropy plus an L2 penalty
``classifier_l2`` * |W|^2 / 2 (the paper used a transductive SVM; a linear classifier is the simple, honest
stand-in). The classifier is part of the model's state dict, so ``zoo evaluate`` reports its test error.
"""
from typing import Optional, Sequence, Tuple

import pyro
import pyro.poutine as poutine
import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ConfigError
from zoo.model import MODELS
from zoo.vae import VAE


@torch.no_grad()
def posterior_mean(guide, x: torch.Tensor, site: str = "z", num_samples: int = 64, batch_size: int = 1000):
    """E_q[site | x], shape (B, D): the guide distribution's mean where it has one (diagonal Gaussian), otherwise the
    average of ``num_samples`` draws (flows)."""
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        fn = poutine.trace(guide).get_trace(xb).nodes[site]["fn"]
        try:
            mean = fn.mean
        except NotImplementedError:
            with pyro.plate("particles", num_samples, dim=-2):
                mean = poutine.trace(guide).get_trace(xb).nodes[site]["value"].mean(0)
        out.append(mean.expand(xb.shape[0], -1))
    return torch.cat(out)


@MODELS.register("m1", paper="Kingma, Rezende, Mohamed & Welling 2014 (M1)",
                 summary="VAE on all data, then logistic regression on posterior means of the labelled points")
class M1(VAE):
    """The VAE plus a classifier on E_q[z|x]; see the module docstring."""

    uses_labels = True

    def __init__(self, data_dim: int, num_classes: int = 10, latent_dim: int = 50, hidden: Sequence[int] = (400,),
                 likelihood: str = "bernoulli", activation: str = "relu", prior: str = "standard",
                 sigma: float = 0.1, classifier_l2: float = 1e-2, image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__(data_dim, latent_dim=latent_dim, hidden=hidden, likelihood=likelihood, activation=activation,
                         prior=prior, sigma=sigma, image_shape=image_shape)
        if num_classes is None or num_classes < 2:
            raise ConfigError(f"model m1 needs a labelled data set with at least 2 classes, got {num_classes}")
        self.num_classes, self.classifier_l2 = int(num_classes), float(classifier_l2)
        self.classifier = nn.Linear(latent_dim, self.num_classes)
        self.register_buffer("feature_loc", torch.zeros(latent_dim))
        self.register_buffer("feature_scale", torch.ones(latent_dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def features(self, x, guide):
        return (posterior_mean(guide, x) - self.feature_loc) / self.feature_scale

    def predict_logits(self, x: torch.Tensor, guide) -> torch.Tensor:
        if not bool(self.fitted):
            raise ConfigError("the M1 classifier has not been fitted yet (it is fitted when `zoo train` ends)")
        return self.classifier(self.features(x, guide))

    def after_training(self, guide, data, max_iter: int = 500) -> dict:
        """Fit the classifier on the posterior means of the labelled training points (the VAE is left unchanged)."""
        y = data.train.y
        if y is None:
            raise ConfigError(f"model m1 needs labels; data set {data.name!r} has none")
        was_training = guide.training
        guide.eval()
        feats = posterior_mean(guide, data.train.x)  # every training point: standardisation may use unlabelled x
        guide.train(was_training)
        self.feature_loc.copy_(feats.mean(0))
        self.feature_scale.copy_(feats.std(0).clamp_min(1e-6))
        has = y >= 0
        if not bool(has.any()):
            raise ConfigError("model m1 found no labelled training point (all labels are -1)")
        f, t = ((feats[has] - self.feature_loc) / self.feature_scale).detach(), y[has]
        with torch.no_grad():
            nn.init.zeros_(self.classifier.weight)
            nn.init.zeros_(self.classifier.bias)
        params = list(self.classifier.parameters())
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(self.classifier(f), t) + 0.5 * self.classifier_l2 * self.classifier.weight.pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            loss = opt.step(closure)
        for p in params:
            p.grad = None
        self.fitted.fill_(True)
        with torch.no_grad():
            train_error = float((self.classifier(f).argmax(-1) != t).float().mean())
        return {"labelled_points": int(has.sum()), "classifier_loss": float(loss.detach()), "train_error": train_error}
