"""The semi-supervised guide of Kingma, Rezende, Mohamed & Welling 2014 (the inference network of M2):

    q(y | x) = Cat(y; softmax(g(x)))                      a classifier (the model's ``make_classifier()``, an MLP)
    q(z | x, y) = N(z; mu(h(x), onehot y), diag sigma^2)   Gaussian heads on the encoder features and onehot(y)

It handles a model's categorical latent (at most one) and its real latents:

* where the label is observed (the labelled part of :func:`zoo.m2.label_parts`) y is not sampled; z ~ q(z | x, y);
* where it is missing, ``y`` is sampled with ``infer={"enumerate": "parallel"}``: under ``TraceEnum_ELBO`` (objective
  ``enum``) every class is tried at once in an enumeration dimension left of the plates, so the unlabelled bound
  sum_y q(y|x) L(x, y) + H(q(y|x)) is computed exactly in y -- not by sampling y -- and q(y|x) gets its gradient.
  Outside enumeration (samples, reconstructions) y is drawn from q(y|x).

For a model without a categorical latent (a VAE) it is the diagonal Gaussian guide.
"""
import pyro
import pyro.distributions as dist
import torch
from torch import nn

from guides.base import GUIDES, AmortizedGuide
from guides.diagonal import GaussianHeads
from zoo.errors import ConfigError
from zoo.m2 import LabelPart, label_parts, onehot_cat


@GUIDES.register("semi-supervised", paper="Kingma, Rezende, Mohamed & Welling 2014 (M2 inference network)",
                 summary="q(y|x) classifier, enumerated where y is unobserved, and Gaussian q(z|x,y)",
                 discrete=True, supports=("real", "categorical"))
class SemiSupervisedGuide(AmortizedGuide):
    """q(y|x) q(z|x,y); see the module docstring."""

    supports = ("real", "categorical")

    def __init__(self, model):
        super().__init__(model)
        categorical = [s for s in self.sites if s.support == "categorical"]
        if len(categorical) > 1:
            raise ConfigError(f"guide semi-supervised handles one categorical latent, model {type(model).__name__} "
                              f"has {len(categorical)} ({', '.join(s.name for s in categorical)})")
        self.label_site = categorical[0] if categorical else None
        if self.label_site is not None:
            if self.label_site.num_classes is None:
                raise ConfigError(f"categorical site {self.label_site.name!r} declares no num_classes")
            make = getattr(model, "make_classifier", None)
            self.classifier = make() if make is not None else nn.Linear(self.context_dim, self.label_site.num_classes)
            self._classifier_on_features = make is None
        self.real_sites = [s for s in self.sites if s.support != "categorical"]
        self.gaussian = GaussianHeads(self.real_sites, self.input_dims)

    # ------------------------------------------------------------------------------------------ pieces
    def classify(self, x: torch.Tensor, h: torch.Tensor = None) -> torch.Tensor:
        """The logits of q(y | x), shape (B, C)."""
        if self.label_site is None:
            raise ConfigError("this guide's model has no categorical latent: there is no classifier")
        if self._classifier_on_features:
            return self.classifier(self.encoder(x) if h is None else h)
        return self.classifier(x)

    def _context(self, site, h, values):
        if not site.depends_on:
            return h
        parts = []
        for name in site.depends_on:
            v = values[name]
            if self.label_site is not None and name == self.label_site.name:
                v = onehot_cat(h[..., :0], v, self.label_site.num_classes)  # onehot broadcast with h's batch dims
            parts.append(v)
        shape = torch.broadcast_shapes(h.shape[:-1], *(p.shape[:-1] for p in parts))
        return torch.cat([t.expand(shape + t.shape[-1:]) for t in [h] + parts], dim=-1)

    def site_distribution(self, site, context):
        loc, scale = self.gaussian(site.name, context)
        return dist.Normal(loc, scale, validate_args=False).to_event(1)

    @torch.no_grad()
    def posterior_loc(self, x: torch.Tensor, y: torch.Tensor, site: str = "z") -> torch.Tensor:
        """The mean of q(site | x, y) for given labels (figures: a test digit's style)."""
        h = self.encoder(x)
        values = {self.label_site.name: y} if self.label_site is not None else {}
        for s in self.real_sites:
            loc, _ = self.gaussian(s.name, self._context(s, h, values))
            values[s.name] = loc
            if s.name == site:
                return loc
        raise KeyError(site)

    # ------------------------------------------------------------------------------------------ the guide
    def _part(self, part: LabelPart):
        h = self.encoder(part.x)
        values = {}
        with part.plate_messenger():
            for site in self.sites:
                if site is self.label_site:
                    if part.labelled:
                        values[site.name] = part.y
                    else:
                        logits = self.classify(part.x, h)
                        values[site.name] = pyro.sample(
                            site.name + part.suffix, dist.Categorical(logits=logits, validate_args=False),
                            infer={"enumerate": "parallel"})
                    continue
                values[site.name] = pyro.sample(site.name + part.suffix,
                                                self.site_distribution(site, self._context(site, h, values)))
        return values

    def forward(self, x: torch.Tensor, y=None):
        if self.label_site is None:
            return self._part(LabelPart("data", "", x, None))
        values = {}
        for part in label_parts(x, y):
            values.update({k + part.suffix: v for k, v in self._part(part).items()})
        return values
