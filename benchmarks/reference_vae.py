"""The hand-written PyTorch VAE that `zoo train --model vae --guide diagonal --objective elbo` is measured against.

Same network as the zoo's (encoder MLP D-400-ReLU with linear heads for mu and softplus(.)+1e-5 sigma; decoder
MLP d-400-ReLU-D giving Bernoulli logits), same loss (Bernoulli log-likelihood + analytic KL to N(0, I), nats per
point), same data stream (per-epoch dynamic binarization and permutation from the same seeded generators) and the same
optimiser (one fused torch Adam). No Pyro anywhere: this is the floor the zoo's overhead is measured against, and its
importance-sampled log-likelihood is an independent implementation of the evaluation protocol.
"""
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from inference.training import _epoch_generator, make_optimizer


class ReferenceVAE(nn.Module):
    def __init__(self, data_dim=784, latent_dim=20, hidden=400):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(data_dim, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 2 * latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, data_dim))

    def posterior(self, x):
        loc, raw = self.head(self.encoder(x)).chunk(2, dim=-1)
        return loc, F.softplus(raw) + 1e-5

    def neg_elbo(self, x):
        """Sum over the batch of -ELBO with the analytic KL (nats)."""
        loc, scale = self.posterior(x)
        z = loc + scale * torch.randn_like(loc)
        logits = self.decoder(z)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = 0.5 * (loc.pow(2) + scale.pow(2) - 1).sum() - scale.log().sum()
        return rec + kl

    @torch.no_grad()
    def log_likelihood(self, x, num_samples=5000, chunk=100):
        """Importance-sampled log p(x) per point: logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K."""
        loc, scale = self.posterior(x)
        log_w = []
        for start in range(0, num_samples, chunk):
            k = min(chunk, num_samples - start)
            eps = torch.randn((k,) + loc.shape, dtype=loc.dtype, device=loc.device)
            z = loc + scale * eps
            log_px_z = -F.binary_cross_entropy_with_logits(self.decoder(z), x.expand(k, -1, -1),
                                                           reduction="none").sum(-1)
            log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
            log_qz = -0.5 * (eps.pow(2) + math.log(2 * math.pi)).sum(-1) - scale.log().sum(-1)
            log_w.append(log_px_z + log_pz - log_qz)
        log_w = torch.cat(log_w).double()
        return torch.logsumexp(log_w, 0) - math.log(num_samples)


def _train_epochs(data, epochs, batch_size, seed, params, loss_fn, lr):
    """The zoo Trainer's data stream (per-epoch binarization and seeded permutation) with one fused Adam over
    ``params``; ``loss_fn(xb)`` is the batch's summed loss. Returns the seconds of each epoch."""
    opt = make_optimizer(params, lr)
    n, seconds = len(data.train), []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        x_epoch = data.train_epoch_x(epoch)
        perm = torch.randperm(n, generator=_epoch_generator(seed, epoch)).to(x_epoch.device)
        for start in range(0, n, batch_size):
            xb = x_epoch[perm[start:start + batch_size]]
            loss = loss_fn(xb) / xb.shape[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - t0)
    return seconds


def train_reference(data, epochs, batch_size=128, lr=1e-3, seed=0, latent_dim=20, hidden=400):
    """Train on a zoo Dataset exactly as the zoo's Trainer streams it; returns (model, seconds per epoch list)."""
    torch.manual_seed(seed)
    model = ReferenceVAE(data.dim, latent_dim, hidden).to(data.train.x.device)
    return model, _train_epochs(data, epochs, batch_size, seed, list(model.parameters()), model.neg_elbo, lr)


def direct_flow_loss(model, guide, x):
    """-ELBO summed over the batch for a zoo `vae` with a flow guide, computed straight from the same modules with no
    Pyro trace: z_0 = mu + sigma eps, z_T = f_T o ... o f_1(z_0), log q(z_T|x) = log N(eps) - sum log sigma
    - sum_t log|det J_t|. The hand-written counterpart of `zoo train --guide iaf:4` (same networks, same math)."""
    h = guide.encoder(x)
    loc, scale = guide.gaussian("z", h)
    eps = torch.randn_like(loc)
    z = loc + scale * eps
    log_q = -0.5 * (eps.pow(2) + math.log(2 * math.pi)).sum(-1) - scale.log().sum(-1)
    for flow in guide.flows["z"]:
        t = flow.condition(h)
        z_next = t(z)
        log_q = log_q - t.log_abs_det_jacobian(z, z_next)
        z = z_next
    log_px_z = -F.binary_cross_entropy_with_logits(model.decoder(z), x, reduction="none").sum(-1)
    log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
    return -(log_px_z + log_pz - log_q).sum()


def train_direct_flow(data, guide_spec, epochs, batch_size=128, lr=1e-3, seed=0, latent_dim=20, hidden=400):
    """Train a zoo `vae` + flow guide with :func:`direct_flow_loss` and the zoo's data stream; seconds per epoch."""
    import pyro

    from guides.base import build_guide
    from inference.training import unique_parameters
    from zoo.vae import VAE

    pyro.enable_validation(False)
    torch.manual_seed(seed)
    model = VAE(data.dim, latent_dim, (hidden,), likelihood="bernoulli")
    guide = build_guide(guide_spec, model)
    seconds = _train_epochs(data, epochs, batch_size, seed, unique_parameters(model, guide),
                            lambda xb: direct_flow_loss(model, guide, xb), lr)
    return (model, guide), seconds
