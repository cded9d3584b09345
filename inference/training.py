"""Stochastic variational inference: mini-batches, Adam, validation, early stopping, exact resume.

The loop never needs to know which model it trains: it sees a model and a guide (``nn.Module``s), an objective that
turns them into a differentiable loss, and a :class:`zoo.data.Dataset` already on the training device. One torch Adam
steps every parameter of model and guide (they never go through Pyro's global param store).

Reproducibility: the epoch's permutation and its dynamic binarization are drawn from generators seeded by
(seed, epoch), and the global torch RNG (which Pyro samples from) is saved in every checkpoint, so a run killed at any
step and resumed from its last checkpoint ends with exactly the parameters of an uninterrupted run.
"""
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, Optional

import pyro
import torch

from inference import checkpoint as ckpt
from inference import distributed as ddp
from inference import run_dir as rd
from inference.traced_step import TRACE_AFTER, TracedSteps
from zoo.networks.precision import autocast, resolve_precision


STEP_MODES = ("auto", "traced", "eager")


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: Optional[float] = None  # None: the objective's default (adversarial objectives), else 1e-3
    seed: int = 0
    beta: float = 1.0  # KL weight (beta-VAE when > 1)
    warmup: int = 0  # epochs of linear KL warm-up 0 -> beta
    patience: Optional[int] = None  # early stopping after this many epochs without a better validation loss
    checkpoint_every: int = 0  # also checkpoint every N steps inside an epoch (0: at epoch ends only)
    valid_batch_size: int = 500
    progress: bool = True
    validate: bool = False  # Pyro's argument validation (slow; tests turn it on)
    precision: str = "auto"  # "bf16": autocast the networks to bfloat16 (log-densities stay float32); "auto": bf16
    # only where the device runs it natively, else fp32 (zoo/networks/native_bf16.py); config.json records the result
    precision_reason: Optional[str] = None  # why that precision (recorded when "auto" or a requested one is resolved)
    step: str = "auto"  # "auto": each batch shape's step traced into a graph after 50 eager steps and replayed
    # (inference/traced_step.py; bit for bit the eager step, else eager); "traced": from its second step; "eager"
    # two-player (adversarial) training only; None: the objective's default (inference/adversarial.py)
    critic: Optional[str] = None  # the critic's spec (--critic mlp|dcgan|module:attr)
    critic_steps: Optional[int] = None  # critic updates per generator update
    critic_lr: Optional[float] = None  # the critic's Adam learning rate (default: lr)
    betas: Optional[tuple] = None  # Adam's (beta1, beta2) for both players

    def __post_init__(self):
        if self.step not in STEP_MODES:  # before anything is written (the API builds its TrainConfig first)
            from zoo.errors import ConfigError

            raise ConfigError(f"--step must be one of {', '.join(STEP_MODES)}, got {self.step!r}")


DATA_SCALE_WARNING = 1e6  # |x| above this: a divergence is blamed on the data's scale


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + 17 * (epoch + 1)) % (2**63 - 1))


def unique_parameters(*modules):
    seen, params = set(), []
    for module in modules:
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


def make_optimizer(params, lr, betas=(0.9, 0.999)):
    betas = tuple(betas)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):  # fused kernels unavailable for this device/dtype
        return torch.optim.Adam(params, lr=lr, betas=betas)


class Trainer:
    def __init__(self, model, guide, objective, data, config: TrainConfig, run_dir: str, model_name: str = "",
                 run_config: Optional[dict] = None):
        if config.lr is None:
            config = replace(config, lr=getattr(objective, "lr", None) or 1e-3)
        self.model, self.guide, self.objective, self.data = model, guide, objective, data
        self.config, self.run_dir, self.model_name = config, run_dir, model_name
        self.run_config = run_config or {}
        self.params = unique_parameters(model, guide)
        self.optimizer = make_optimizer(self.params, config.lr, config.betas or (0.9, 0.999))
        self.dist = ddp.current()
        self.device = data.train.x.device
        self.loss_module = self._make_loss_module()
        precision, reason = resolve_precision(config.precision, self.device)  # once, before the first step
        self.config = config = replace(config, precision=precision, precision_reason=config.precision_reason or reason)
        self.traced = self._make_traced_steps()
        n = len(data.train)
        self.global_batch = config.batch_size * self.dist.world_size
        if self.dist.world_size > 1:  # equal shards on every rank: an incomplete last global batch is dropped
            self.steps_per_epoch = n // self.global_batch
            if self.steps_per_epoch == 0:
                from zoo.errors import ConfigError

                raise ConfigError(f"{n} training points cannot fill one global batch of {self.global_batch} "
                                  f"({self.dist.world_size} processes x --batch-size {config.batch_size})")
        else:
            self.steps_per_epoch = math.ceil(n / config.batch_size)
        self.saved_at = None  # (epoch, step) of the checkpoint on disk
        self.warned, self.progress_bar = False, None
        # the data's magnitude, read once: a blow-up on data at 1e18 is the data's fault, not the learning rate's
        x = data.train.x
        self.data_scale = float(x.abs().max()) if x.numel() and x.device.type != "meta" else 0.0
        self.progress = {"epoch": 0, "step": 0, "global_step": 0, "best_valid": math.inf, "best_epoch": -1,
                         "bad_epochs": 0, "epoch_loss_sum": 0.0, "epoch_seconds": 0.0, "finished": False,
                         "stopped_early": False}

    def _make_loss_module(self):
        return ddp.wrap(self.model, self.guide, self.objective, self.dist, self.device)

    def _trace_after(self) -> Optional[int]:
        """Eager steps of a batch shape before its step is traced (inference/traced_step.py), or None when steps are
        never traced: --step eager, or DDP (its gradient hooks live in autograd's backward)."""
        if self.config.step == "eager" or self.dist.world_size > 1:
            return None
        return TRACE_AFTER if self.config.step == "auto" else 2

    def _make_traced_steps(self):
        """The traced step of the loss module, or None (see :meth:`_trace_after`)."""
        trace_after = self._trace_after()
        if trace_after is None:
            return None
        return TracedSteps(self.loss_module, self.objective, autocast=self._autocast, trace_after=trace_after)

    def _traced_count(self) -> int:
        """Steps (of each player, in two-player training) replayed from a traced graph so far."""
        return self.traced.traced_steps if self.traced is not None else 0

    def _traced_reasons(self) -> list:
        """Why traced steps fell back to eager ones (inference/traced_step.py)."""
        return self.traced.reasons() if self.traced is not None else []

    # ------------------------------------------------------------------------- hooks of two-player training
    # (inference/adversarial_training.py): no-ops here, so the single-player step stays what it was
    def _begin_epoch(self):
        """Restore the epoch's running sums beyond the loss (resumed mid-epoch: from the checkpoint's progress)."""

    def _partial_sums(self):
        """Store the running sums beyond the loss in the progress before a mid-epoch checkpoint."""

    def _epoch_extras(self, seen: int) -> dict:
        """Per-epoch values beyond the loss for metrics.jsonl, at the epoch's end (a collective under DDP)."""
        return {}

    def _display_extras(self, seen: int) -> dict:
        """This rank's running values beyond the loss, for the progress bar (formatted strings)."""
        return {}

    def _is_best(self, valid: float) -> bool:
        """Whether this epoch's weights become best.pt: the lowest validation loss so far."""
        p = self.progress
        return valid < p["best_valid"] or p["best_epoch"] < 0

    def _extra_state(self) -> dict:
        """State beyond model, guide and optimizer for the checkpoint."""
        return {}

    def _load_extra_state(self, state: dict):
        """Load what :meth:`_extra_state` saved."""

    # ----------------------------------------------------------------------------------------------- state
    def kl_weight(self, epoch: int, step: int) -> float:
        c = self.config
        if c.warmup <= 0:
            return c.beta
        return c.beta * min(1.0, (epoch * self.steps_per_epoch + step + 1) / (c.warmup * self.steps_per_epoch))

    def _state(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "torch_ranks": ddp.gather_rng_states(self.dist)}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"format": ckpt.FORMAT, "model_name": self.model_name, "config": self.run_config,
                "model": self.model.state_dict(), "guide": self.guide.state_dict(),
                "optimizer": self.optimizer.state_dict(), "rng": rng, "progress": dict(self.progress),
                **self._extra_state()}

    def _state_is_finite(self) -> bool:
        """Whether every weight and every optimizer statistic is finite: checked before each write (one host sync
        per checkpoint, never per step), so no file ever holds a NaN or an infinity."""
        tensors = list(self.params) + list(getattr(self, "extra_params", []))
        for optimizer in [self.optimizer] + list(getattr(self, "extra_optimizers", [])):
            for per_param in optimizer.state.values():
                tensors += [v for v in per_param.values() if torch.is_tensor(v) and v.is_floating_point()]
        if not tensors:
            return True
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())

    def save_checkpoint(self):
        if not self._state_is_finite():
            self._diverged(self.progress["epoch"], "the weights or Adam's statistics are not finite after the last "
                                                   "step")
        state = self._state()  # a collective in distributed runs: every rank takes part
        if self.dist.is_main:
            ckpt.save_atomic(state, rd.path(self.run_dir, rd.CHECKPOINT))
        self.saved_at = (self.progress["epoch"], self.progress["step"])

    def save_best(self):
        if not self.dist.is_main:
            return
        if not self._state_is_finite():
            self._diverged(self.progress["epoch"], "the weights are not finite after the last step")
        ckpt.save_atomic({"format": ckpt.FORMAT, "model_name": self.model_name, "config": self.run_config,
                          "model": self.model.state_dict(), "guide": self.guide.state_dict(),
                          "epoch": self.progress["epoch"], **self._best_extra()}, rd.path(self.run_dir, rd.BEST))

    def _best_extra(self) -> dict:
        return {}

    def load_checkpoint(self):
        from zoo.errors import RunDirError

        path = rd.path(self.run_dir, rd.CHECKPOINT)
        state = ckpt.load(path, expected_model=self.model_name)
        try:
            self.model.load_state_dict(state["model"])
            self.guide.load_state_dict(state["guide"])
            self.optimizer.load_state_dict(state["optimizer"])
            ranks = state["rng"].get("torch_ranks") or [state["rng"]["torch"]]
            progress = dict(state["progress"])
            self._load_extra_state(state)
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise RunDirError(f"{path} does not fit the model that {rd.CONFIG} describes ({first}); the config or the "
                              f"checkpoint was changed or damaged; train the run again with --overwrite") from None
        if len(ranks) != self.dist.world_size:
            raise RunDirError(f"this run was trained by {len(ranks)} processes; resume it with as many "
                              f"(now {self.dist.world_size})")
        torch.set_rng_state(ranks[self.dist.rank])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.progress.update(progress)
        self.saved_at = (self.progress["epoch"], self.progress["step"])

    # ----------------------------------------------------------------------------------------------- loop
    @torch.no_grad()
    def validation_loss(self) -> float:
        split = self.data.valid
        total, saved = 0.0, self.objective.kl_weight
        self.objective.kl_weight = 1.0
        try:
            for start in range(0, len(split), self.config.valid_batch_size):
                xb = split.x[start:start + self.config.valid_batch_size]
                yb = None if split.y is None else split.y[start:start + self.config.valid_batch_size]
                with self._autocast():
                    total = total + self.objective.loss(self.model, self.guide, xb, yb)
        finally:
            self.objective.kl_weight = saved
        total = ddp.all_reduce_mean(torch.as_tensor(total, dtype=torch.float64, device=self.device), self.dist)
        return float(total) / len(split)

    def epoch_metrics(self) -> dict:
        """Extra per-epoch values for metrics.jsonl from the model's optional ``epoch_metrics(guide, data)`` (m2: the
        classifier's test error, recorded to be seen, never used to pick a checkpoint); {} for other models."""
        extra = getattr(self.model, "epoch_metrics", None)
        return dict(extra(self.guide, self.data)) if callable(extra) else {}

    def _check_finite(self, value: float, epoch: int, where: str):
        """Divergence is checked where the loss is read anyway (a checkpoint, the epoch's end), never per step; the
        weights and Adam's state are checked again before every write (:meth:`_state_is_finite`)."""
        if not math.isfinite(value):
            self._diverged(epoch, f"{where} is {value}")

    def _diverged(self, epoch: int, what: str):
        """Stop with one line that says what broke, what is on disk, and the likely cause."""
        from zoo.errors import TrainingDiverged

        if self.saved_at is not None:
            e, s = self.saved_at
            kept = (f"{rd.CHECKPOINT} in {self.run_dir} holds the last finite state (after epoch {e}"
                    + (f", step {s}" if s else "") + "); nothing after it was saved")
        else:
            kept = "no checkpoint was written, so there is nothing to resume"
        if self.data_scale > DATA_SCALE_WARNING:
            cause = (f"the training data reach |x| = {self.data_scale:.3g}, a scale at which the likelihood's "
                     f"log-density overflows float32: standardize or rescale the data (e.g. to [0, 1] or zero mean "
                     f"and unit variance)")
        else:
            cause = f"train again with a smaller --lr (now {self.config.lr:g})" + (
                " or --precision fp32" if self.config.precision != "fp32" else "")
        raise TrainingDiverged(f"training diverged in epoch {epoch + 1}: {what}; {kept}. Likely cause: {cause}")

    def _watch_blowup(self, row: dict, history: list):
        """Warn once when training blows up while staying finite: the training loss far above the best validation
        loss, or the validation loss worse in each of the last three epochs."""
        if self.warned:
            return
        best = min(r["valid_loss"] for r in history + [row])
        # both losses rising epoch after epoch (overfitting lowers the training loss while validation rises)
        worse = [b["valid_loss"] > a["valid_loss"] and b["train_loss"] > a["train_loss"]
                 for a, b in zip(history[-3:], history[-2:] + [row])]
        exploded = abs(row["train_loss"]) > 100 * max(1.0, abs(best)) and row["train_loss"] > best
        if exploded or (len(worse) == 3 and all(worse)):
            self.warned = True
            what = (f"the training loss {row['train_loss']:.4g} is far above the best validation loss {best:.4g}"
                    if exploded else "the training and validation losses got worse in each of the last three epochs")
            import sys

            msg = (f"zoo: warning: epoch {row['epoch'] + 1}: {what}; training may be diverging (--lr "
                   f"{self.config.lr:g}). {rd.BEST} keeps the best weights so far.")
            if self.progress_bar is not None:
                self.progress_bar.write(msg, file=sys.stderr)
            else:
                print(msg, file=sys.stderr)

    def _autocast(self):
        return autocast(self.config.precision, self.device.type)

    def train_step(self, xb, yb, epoch: int, step: int) -> torch.Tensor:
        """One optimizer step on a mini-batch; returns the batch's summed loss (detached, not synchronised)."""
        self.objective.kl_weight = self.kl_weight(epoch, step)
        if self.traced is not None:
            loss = self.traced.step(xb, yb)  # gradients set from the replayed graph, or None: run eagerly
            if loss is not None:
                self.optimizer.step()
                return loss
        with self._autocast():
            loss = self.loss_module(xb, yb)
        self.optimizer.zero_grad(set_to_none=True)
        (loss / xb.shape[0]).backward()
        self.optimizer.step()
        return loss.detach()

    def fit(self, resume: bool = False, on_step: Optional[Callable[[int], None]] = None) -> dict:
        c = self.config
        pyro.enable_validation(c.validate)
        main = self.dist.is_main
        if resume:
            self.load_checkpoint()
            if self.progress["finished"] and not self.progress["stopped_early"] and self.progress["epoch"] < c.epochs:
                self.progress["finished"] = False  # a finished run extended to more epochs (--resume --epochs N)
            if main:
                rd.truncate_metrics(self.run_dir, self.progress["epoch"])
        else:
            pyro.set_rng_seed(c.seed + self.dist.rank)  # each rank draws its own noise
            if main:
                rd.write_metrics(self.run_dir, [])
        p = self.progress
        train = self.data.train
        device = train.x.device
        bar = self.progress_bar = _progress_bar(c.progress and main, self.steps_per_epoch)
        history = rd.read_metrics(self.run_dir) if main else []
        try:
            while not p["finished"] and p["epoch"] < c.epochs:
                epoch = p["epoch"]
                x_epoch = self.data.train_epoch_x(epoch)
                perm = torch.randperm(len(train), generator=_epoch_generator(c.seed, epoch)).to(device)
                epoch_sum = torch.tensor(p["epoch_loss_sum"], dtype=torch.float64, device=device)
                self._begin_epoch()
                traced_before = self._traced_count()
                t0 = time.perf_counter() - p["epoch_seconds"]
                if bar is not None:
                    bar.reset(total=self.steps_per_epoch)
                    bar.update(p["step"])
                    bar.set_description(f"epoch {epoch + 1}/{c.epochs}")
                self.model.train()
                self.guide.train()
                display_every = max(1, self.steps_per_epoch // 20)
                for step in range(p["step"], self.steps_per_epoch):
                    idx = ddp.shard(perm[step * self.global_batch:(step + 1) * self.global_batch], self.dist)
                    xb = x_epoch[idx]
                    yb = None if train.y is None else train.y[idx]
                    epoch_sum += self.train_step(xb, yb, epoch, step)
                    p["step"], p["global_step"] = step + 1, p["global_step"] + 1
                    if bar is not None:
                        bar.update(1)
                        if (step + 1) % display_every == 0:  # one host sync per display, not per step
                            seen = min((step + 1) * c.batch_size, len(train))
                            bar.set_postfix(loss=f"{float(epoch_sum) / seen:.2f}", refresh=False,
                                            **self._display_extras(seen))
                    if c.checkpoint_every and p["global_step"] % c.checkpoint_every == 0 and step + 1 < self.steps_per_epoch:
                        # the ranks' mean: after a resume every rank restarts from it, and the epoch-end sum over
                        # ranks is then the uninterrupted run's
                        partial = float(ddp.all_reduce_mean(epoch_sum, self.dist))
                        self._check_finite(partial, epoch, f"the training loss up to step {step + 1}")
                        p["epoch_loss_sum"], p["epoch_seconds"] = partial, time.perf_counter() - t0
                        self._partial_sums()
                        self.save_checkpoint()
                    if on_step is not None:
                        on_step(p["global_step"])
                seconds = time.perf_counter() - t0
                seen = min(self.steps_per_epoch * self.global_batch, len(train))
                epoch_sum = float(ddp.all_reduce_mean(epoch_sum, self.dist) * self.dist.world_size)
                self._check_finite(epoch_sum, epoch, "the training loss")
                self.model.eval()
                self.guide.eval()
                t1 = time.perf_counter()
                valid = self.validation_loss()
                self._check_finite(valid, epoch, "the validation loss")
                row = {"epoch": epoch, "train_loss": epoch_sum / seen, "valid_loss": valid,
                       "kl_weight": self.objective.kl_weight, "seconds": seconds,
                       "valid_seconds": time.perf_counter() - t1, "step": p["global_step"]}
                if self.traced is not None:
                    row["traced_steps"] = self._traced_count() - traced_before
                    reasons = self._traced_reasons()
                    if reasons:
                        row["eager_steps_because"] = reasons
                row.update(self._epoch_extras(seen))
                row.update(self.epoch_metrics())
                warmed_up = c.warmup <= 0 or epoch + 1 >= c.warmup
                if self._is_best(valid):
                    p["best_valid"], p["best_epoch"], p["bad_epochs"] = valid, epoch, 0
                    row["best"] = True
                    self.save_best()
                elif warmed_up:
                    p["bad_epochs"] += 1
                if bar is not None:
                    bar.set_postfix(loss=f"{row['train_loss']:.2f}", valid=f"{valid:.2f}")
                if main:
                    self._watch_blowup(row, history)
                    history.append(row)
                    rd.write_metrics(self.run_dir, history)
                p.update(epoch=epoch + 1, step=0, epoch_loss_sum=0.0, epoch_seconds=0.0)
                if c.patience is not None and p["bad_epochs"] >= c.patience:
                    p["finished"] = p["stopped_early"] = True
                if p["epoch"] >= c.epochs:
                    p["finished"] = True
                self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
        return dict(p)


def _progress_bar(enabled: bool, total: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, dynamic_ncols=True, leave=False, mininterval=0.5)


def config_dict(config: TrainConfig) -> dict:
    return asdict(config)
