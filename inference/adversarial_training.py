"""Two-player training: a generator (the model, seen through its samples) and a critic, each with its own Adam.

The loop is :class:`inference.training.Trainer`'s -- the same epochs, seeded permutations, dynamic binarization,
checkpoints, DDP sharding and exact resume -- with a two-player step. Every step of an epoch takes one mini-batch of
data x (B points) and

1. updates the critic on x against B fresh samples x~ of the generator (detached):
   omega <- Adam(grad_omega critic_loss(V(x), V(x~)));
2. every ``critic_steps``-th step (counted over the whole run, so a resumed run keeps the rhythm), updates the
   generator on B fresh samples: theta <- Adam(grad_theta generator_loss(V(G(z)))), the critic frozen.

(Gulrajani et al. 2017, Algorithm 1, with n_critic = ``critic_steps``; n_critic = 1 is the alternating scheme of
Goodfellow et al. 2014 with k = 1.)

Recorded per epoch in metrics.jsonl: ``train_loss`` -- the critic's estimate of the divergence on the training batches
(``objective.divergence_estimate``: 2 JSD - log 4 + log 4 for gan, the f-divergence bound for fgan, E_P V - E_Q V for
wgan-gp); ``valid_loss`` -- the same estimate on the validation split against as many fresh samples (recorded, not used to pick
``best.pt``, which holds the last epoch's generator: see :meth:`AdversarialTrainer._is_best`); ``critic_loss`` and
``generator_loss`` -- the two players' own losses, means over their steps.

Checkpoints add the critic, its optimizer and the players' running sums to the single-player state, so a run killed at
any step resumes bit for bit; the torch RNG (generator noise, WGAN-GP's interpolation weights) is saved as before.
Under DDP the critic's and the generator's losses are two DistributedDataParallel modules (each over its own player's
parameters), so both players' gradients are averaged over the ranks. Batch norm inside a generator (dcgan) normalises
each rank's shard by its own statistics, so a data-parallel dcgan is not the single-process run on the global batch;
the MLP generator and the critics have no batch norm.
"""
from dataclasses import replace

import torch
from torch import nn

from inference import distributed as ddp
from inference.traced_step import TracedSteps
from inference.training import Trainer, make_optimizer


class CriticLoss(nn.Module):
    """The critic's loss and divergence estimate on a mini-batch: an nn.Module over the critic alone (model and guide
    held outside, so DDP averages the critic's gradients only)."""

    def __init__(self, model, guide, critic, objective):
        super().__init__()
        self.critic, self.objective = critic, objective
        self._generator = (model, guide)

    def forward(self, x):
        model, guide = self._generator
        return self.objective.critic_step(model, guide, self.critic, x)


class GeneratorLoss(nn.Module):
    """The generator's loss on a mini-batch: an nn.Module over the model and guide, the critic held outside."""

    def __init__(self, model, guide, critic, objective):
        super().__init__()
        self.model, self.guide, self.objective = model, guide, objective
        self._critic = (critic,)  # not a submodule: DDP averages the generator's gradients only

    def forward(self, x):
        return self.objective.generator_step(self.model, self.guide, self._critic[0], x)


def _wrap(module, info, device):
    if info.world_size == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


class AdversarialTrainer(Trainer):
    """:class:`Trainer` with the two-player step; ``critic`` is an ``nn.Module`` V(x) (:mod:`zoo.critics`)."""

    def __init__(self, model, guide, objective, data, config, run_dir, model_name="", run_config=None, critic=None):
        if critic is None:
            from zoo.errors import ConfigError

            raise ConfigError(f"objective {objective.spec()} needs a critic (--critic)")
        self.critic = critic.to(data.train.x.device)
        original_lr = config.lr
        config = replace(config, betas=tuple(config.betas or objective.betas),
                         critic_steps=config.critic_steps or objective.critic_steps)
        super().__init__(model, guide, objective, data, config, run_dir, model_name, run_config)
        self.extra_params = list(self.critic.parameters())
        # the critic's lr: --critic-lr, else the objective's own (avb: 2e-4 against the generator's 1e-4), else lr
        critic_lr = self.config.critic_lr or (getattr(objective, "critic_lr", None) if original_lr is None else None)
        self.critic_optimizer = make_optimizer(self.extra_params, critic_lr or self.config.lr, self.config.betas)
        self.extra_optimizers = [self.critic_optimizer]
        self._sums = None

    def _make_loss_module(self):
        self.critic_module = _wrap(CriticLoss(self.model, self.guide, self.critic, self.objective), self.dist,
                                   self.device)
        return _wrap(GeneratorLoss(self.model, self.guide, self.critic, self.objective), self.dist, self.device)

    def _make_traced_steps(self):
        """Each player's step traced (inference/traced_step.py), the other player's parameters inputs of its graph;
        the losses are means already (no division by the batch size)."""
        trace_after = self._trace_after()
        self.traced_critic = None
        if trace_after is None:
            return None
        self.traced_critic = TracedSteps(self.critic_module, self.objective, trace_after=trace_after,
                                         autocast=self._autocast, others=[self.model, self.guide], per_point=False)
        return TracedSteps(self.loss_module, self.objective, trace_after=trace_after, autocast=self._autocast,
                           others=[self.critic], per_point=False)

    def _traced_count(self) -> int:
        return super()._traced_count() + (self.traced_critic.traced_steps if self.traced_critic is not None else 0)

    def _traced_reasons(self) -> list:
        critic = self.traced_critic.reasons() if self.traced_critic is not None else []
        return sorted(set(super()._traced_reasons()) | {f"critic: {r}" for r in critic})

    # ------------------------------------------------------------------------------------------- the step
    def train_step(self, xb, yb, epoch, step):
        n = xb.shape[0]
        self.objective.kl_weight = self.kl_weight(epoch, step)  # --beta / --warmup (avb weighs its T by it)
        traced = self.traced_critic.step(xb) if self.traced_critic is not None else None
        if traced is not None:  # the critic's gradients set from the replayed graph
            critic_loss, estimate = traced
        else:
            with self._autocast():
                critic_loss, estimate = self.critic_module(xb)
            self.critic_optimizer.zero_grad(set_to_none=True)
            critic_loss.backward()
        self.critic_optimizer.step()
        sums = self._sums
        sums[0] += critic_loss.detach() * n
        sums[3] += n
        if (self.progress["global_step"] + 1) % self.config.critic_steps == 0:
            for p in self.extra_params:
                p.requires_grad_(False)
            try:
                generator_loss = self.traced.step(xb) if self.traced is not None else None
                if generator_loss is None:
                    with self._autocast():
                        generator_loss = self.loss_module(xb)
                    self.optimizer.zero_grad(set_to_none=True)
                    generator_loss.backward()
                self.optimizer.step()
            finally:
                for p in self.extra_params:
                    p.requires_grad_(True)
            sums[1] += generator_loss.detach() * n
            sums[2] += n
        return estimate * n

    @torch.no_grad()
    def validation_loss(self) -> float:
        split, total = self.data.valid, 0.0
        for start in range(0, len(split), self.config.valid_batch_size):
            xb = split.x[start:start + self.config.valid_batch_size]
            with self._autocast():
                estimate = self.objective.validation_estimate(self.model, self.guide, self.critic, xb)
                total = total + estimate.double() * xb.shape[0]
        total = ddp.all_reduce_mean(torch.as_tensor(total, dtype=torch.float64, device=self.device), self.dist)
        return float(total) / len(split)

    def _is_best(self, valid: float) -> bool:
        """Every epoch: best.pt holds the last generator. The critic's divergence estimate is made by a critic that
        changes with every epoch, so a lower value in an early epoch does not mean a better generator (measured on
        mnist5k: fgan:kl and wgan-gp estimates rise as their critics sharpen, and selecting by them kept epoch 1 of 6)."""
        return True

    def _watch_blowup(self, row, history):
        """Not for two players: the critic's divergence estimate rises whenever the critic gets stronger."""

    # -------------------------------------------------------------------------------- sums and state
    _SUM_KEYS = ("epoch_critic_sum", "epoch_generator_sum", "epoch_generator_points", "epoch_critic_points")

    def _begin_epoch(self):
        p = self.progress
        self._sums = torch.tensor([p.get(k, 0.0) for k in self._SUM_KEYS], dtype=torch.float64, device=self.device)

    def _reduced_sums(self):
        return (ddp.all_reduce_mean(self._sums, self.dist) * self.dist.world_size).tolist()

    def _partial_sums(self):
        # the ranks' mean, as the single-player loop stores its loss: every rank resumes from it
        for k, v in zip(self._SUM_KEYS, ddp.all_reduce_mean(self._sums, self.dist).tolist()):
            self.progress[k] = v

    def _epoch_extras(self, seen):
        critic, generator, g_points, c_points = self._reduced_sums()
        for k in self._SUM_KEYS:
            self.progress[k] = 0.0
        return {"critic_loss": critic / max(c_points, 1.0),
                "generator_loss": generator / g_points if g_points else None}

    def _display_extras(self, seen):
        critic, generator, g_points, c_points = self._sums.tolist()
        shown = {"critic": f"{critic / max(c_points, 1.0):.3f}"}
        if g_points:
            shown["gen"] = f"{generator / g_points:.3f}"
        return shown

    def _extra_state(self):
        return {"critic": self.critic.state_dict(), "critic_optimizer": self.critic_optimizer.state_dict()}

    def _load_extra_state(self, state):
        self.critic.load_state_dict(state["critic"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])

    def _best_extra(self):
        return {"critic": self.critic.state_dict()}

    def epoch_metrics(self) -> dict:
        """The model's per-epoch values, and the objective's where it has ``epoch_metrics(model, guide, data)``
        (infogan: the mutual-information bound and the code's accuracy on the validation labels)."""
        row = super().epoch_metrics()
        extra = getattr(self.objective, "epoch_metrics", None)
        if callable(extra):
            row.update(extra(self.model, self.guide, self.data))
        return row
