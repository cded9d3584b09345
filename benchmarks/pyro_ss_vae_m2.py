"""Pyro's own semi-supervised VAE example (M2), for ``benchmarks/semi_supervised.py``.

Source: ``examples/vae/ss_vae_M2.py`` and ``examples/vae/utils/custom_mlp.py`` of https://github.com/pyro-ppl/pyro,
commit 64e71eee1c14dc926d5cbc5e762b6337bb4750a6 (the last one to touch ss_vae_M2.py; repository head
ff6ae1c9572591791aae8842bcd702fcf0b46fd6), Copyright Contributors to the Pyro project, Apache License 2.0
(https://www.apache.org/licenses/LICENSE-2.0). Written here again, step for step, rather than pasted, so that its
parts can be called from the benchmark; what is the same as Pyro's:

* the networks: MLPs with Softplus hidden layers whose weights and biases start at N(0, 0.001^2) (the output layers keep
  torch's default initialisation); q(y|x) = OneHotCategorical(softmax(encoder_y(x))); q(z|x,y) =
  Normal(loc, exp(.)) from encoder_z([x, y]); p(x|y,z) = Bernoulli(sigmoid(decoder([z, y]))), z 50, hidden (500,);
* the model and guide: z ~ N(0, I), y ~ OneHotCategorical(1/10) observed where labelled, x ~ Bernoulli, all in one
  ``pyro.plate("data")``; the guide samples y from q(y|x) only where unlabelled, enumerated in parallel
  (``config_enumerate(guide, "parallel", expand=True)``), under ``TraceEnum_ELBO(max_plate_nesting=1)``;
* the auxiliary loss: a second SVI on ``model_classify`` (``OneHotCategorical(q(y|x))`` observed at the labels under
  ``poutine.scale(aux_loss_multiplier)``, 46) with an empty guide, ``Trace_ELBO``, stepped after the ELBO step on
  every supervised batch, both with the one ``pyro.optim.Adam`` (lr 4.2e-4, betas (0.9, 0.999), batch 200: the
  example's argument defaults);
* the epoch: ``run_inference_for_epoch``: supervised and unsupervised batches interleaved, batch i supervised when
  i % int(N_train / N_labelled) == 1 until the supervised loader is spent; the classifier is the argmax of q(y|x).

What is adapted (data loading only): the training points are mnist5k's 4000 training digits (not MNIST's 50000) in the
zoo's dynamic binarization (the bits the zoo's m2 sees in the same epoch, where Pyro feeds grey levels to its
Bernoulli); the labelled ones are the zoo's class-balanced subset (``zoo.data.labels.mask_labels`` with the run's
seed); the supervised loader's batch is min(batch, N_labelled) (Pyro asserts that the batch divides N_labelled, which
100 labels and batch 200 break); the test set is the zoo's binarized mnist5k test split. Pyro picks its reported
number by the validation accuracy (validation labels); here the last epoch's test error is reported, with the
per-epoch errors beside it.
"""
import time

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.optim import Adam
from torch import nn


class Exp(nn.Module):
    def forward(self, v):
        return torch.exp(v)


class Concat(nn.Module):
    """Concatenate a list of inputs on the last dim, broadcasting their batch dims (Pyro's ``allow_broadcast``)."""

    def forward(self, inputs):
        if torch.is_tensor(inputs):
            return inputs
        shape = torch.broadcast_shapes(*(t.shape[:-1] for t in inputs)) + (-1,)
        return torch.cat([t.expand(shape) for t in inputs], dim=-1)


class Heads(nn.ModuleList):
    def forward(self, h):
        return [m(h) for m in self]


class MLP(nn.Module):
    """Pyro's ``utils.custom_mlp.MLP`` for one hidden-size list: Linear layers (weights and biases ~ N(0, 0.001^2)),
    Softplus between them, then one output layer (or one per entry of a list of output sizes) with its activation."""

    def __init__(self, input_size, hidden, output_size, output_activation=None):
        super().__init__()
        layers, last = [Concat()], input_size
        for width in hidden:
            lin = nn.Linear(last, width)
            lin.weight.data.normal_(0, 0.001)
            lin.bias.data.normal_(0, 0.001)
            layers += [lin, nn.Softplus()]
            last = width
        if isinstance(output_size, int):
            layers.append(nn.Linear(last, output_size))
            if output_activation is not None:
                layers.append(output_activation)
        else:
            acts = output_activation if isinstance(output_activation, (list, tuple)) else [output_activation] * len(
                output_size)
            layers.append(Heads([nn.Sequential(nn.Linear(last, size), *([act] if act is not None else []))
                                 for size, act in zip(output_size, acts)]))
        self.net = nn.Sequential(*layers)

    def forward(self, inputs):
        return self.net(inputs)


class SSVAE(nn.Module):
    """Pyro's ``SSVAE``: model, guide, classifier and the auxiliary model_classify / guide_classify."""

    def __init__(self, output_size=10, input_size=784, z_dim=50, hidden_layers=(500,), aux_loss_multiplier=46.0):
        super().__init__()
        self.output_size, self.input_size, self.z_dim = output_size, input_size, z_dim
        self.aux_loss_multiplier = aux_loss_multiplier
        hidden = list(hidden_layers)
        self.encoder_y = MLP(input_size, hidden, output_size, nn.Softmax(dim=-1))
        self.encoder_z = MLP(input_size + output_size, hidden, [z_dim, z_dim], [None, Exp()])
        self.decoder = MLP(z_dim + output_size, hidden, input_size, nn.Sigmoid())

    def model(self, xs, ys=None):
        pyro.module("ss_vae", self)
        batch_size = xs.size(0)
        options = dict(dtype=xs.dtype, device=xs.device)
        with pyro.plate("data"):
            prior_loc = torch.zeros(batch_size, self.z_dim, **options)
            prior_scale = torch.ones(batch_size, self.z_dim, **options)
            zs = pyro.sample("z", dist.Normal(prior_loc, prior_scale).to_event(1))
            alpha_prior = torch.ones(batch_size, self.output_size, **options) / (1.0 * self.output_size)
            ys = pyro.sample("y", dist.OneHotCategorical(alpha_prior), obs=ys)
            loc = self.decoder([zs, ys])
            pyro.sample("x", dist.Bernoulli(loc, validate_args=False).to_event(1), obs=xs)
            return loc

    def guide(self, xs, ys=None):
        with pyro.plate("data"):
            if ys is None:
                alpha = self.encoder_y(xs)
                ys = pyro.sample("y", dist.OneHotCategorical(alpha))
            loc, scale = self.encoder_z([xs, ys])
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def classifier(self, xs):
        alpha = self.encoder_y(xs)
        _, ind = torch.topk(alpha, 1)
        return torch.zeros_like(alpha).scatter_(1, ind, 1.0)

    def model_classify(self, xs, ys=None):
        pyro.module("ss_vae", self)
        with pyro.plate("data"):
            if ys is not None:
                alpha = self.encoder_y(xs)
                with pyro.poutine.scale(scale=self.aux_loss_multiplier):
                    pyro.sample("y_aux", dist.OneHotCategorical(alpha), obs=ys)

    def guide_classify(self, xs, ys=None):
        pass


def _batches(x, y, batch_size, generator):
    perm = torch.randperm(x.shape[0], generator=generator)
    for start in range(0, x.shape[0], batch_size):
        idx = perm[start:start + batch_size]
        yield x[idx], (None if y is None else y[idx])


def run_inference_for_epoch(sup, unsup, losses, periodic_interval_batches):
    """Pyro's loop: ``sup`` and ``unsup`` are lists of batches; returns the summed losses of both kinds."""
    sup_batches, unsup_batches = len(sup), len(unsup)
    epoch_losses_sup, epoch_losses_unsup = [0.0] * len(losses), [0.0] * len(losses)
    sup_iter, unsup_iter = iter(sup), iter(unsup)
    ctr_sup = 0
    for i in range(sup_batches + unsup_batches):
        is_supervised = (i % periodic_interval_batches == 1) and ctr_sup < sup_batches
        if is_supervised:
            xs, ys = next(sup_iter)
            ctr_sup += 1
        else:
            xs, ys = next(unsup_iter)
        for k, loss in enumerate(losses):
            if is_supervised:
                epoch_losses_sup[k] += loss.step(xs, ys)
            else:
                epoch_losses_unsup[k] += loss.step(xs)
    return epoch_losses_sup, epoch_losses_unsup


def train_pyro_example(data, epochs=50, batch_size=200, lr=4.2e-4, beta_1=0.9, aux_loss_multiplier=46.0, z_dim=50,
                       hidden=(500,), seed=0, log=None):
    """Train Pyro's SS-VAE on ``data`` (a zoo Dataset after ``mask_labels(..., repeat=1)``, dynamic binarization).

    Returns (per-epoch test errors, per-test-point 0/1 errors of the last epoch, seconds per epoch)."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    num_classes = int(data.num_classes)
    ss_vae = SSVAE(output_size=num_classes, input_size=data.dim, z_dim=z_dim, hidden_layers=hidden,
                   aux_loss_multiplier=aux_loss_multiplier)
    optimizer = Adam({"lr": lr, "betas": (beta_1, 0.999)})
    guide = config_enumerate(ss_vae.guide, "parallel", expand=True)
    losses = [SVI(ss_vae.model, guide, optimizer, loss=TraceEnum_ELBO(max_plate_nesting=1,
                                                                       strict_enumeration_warning=False)),
              SVI(ss_vae.model_classify, ss_vae.guide_classify, optimizer, loss=Trace_ELBO())]
    has = data.train.y >= 0
    n_sup = int(has.sum())
    periodic_interval_batches = int(len(data.train) / (1.0 * n_sup))
    onehot = torch.nn.functional.one_hot(data.train.y.clamp(min=0), num_classes).float()
    test_x, test_y = data.test.x, data.test.y
    errors, seconds, wrong = [], [], None
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        x_epoch = data.train_epoch_x(epoch)  # the bits the zoo's m2 sees in this epoch
        sup = list(_batches(x_epoch[has], onehot[has], min(batch_size, n_sup), gen))
        unsup = list(_batches(x_epoch[~has], None, batch_size, gen))
        run_inference_for_epoch(sup, unsup, losses, periodic_interval_batches)
        seconds.append(time.perf_counter() - t0)
        with torch.no_grad():
            wrong = (ss_vae.classifier(test_x).argmax(-1) != test_y).double()
        errors.append(float(wrong.mean()))
        if log is not None:
            log(f"pyro example epoch {epoch + 1}: test error {100 * errors[-1]:.1f}% ({seconds[-1]:.1f} s)")
    return errors, wrong, seconds
