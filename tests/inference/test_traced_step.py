"""The traced training step (inference/traced_step.py): every registered model's traced steps equal its eager steps bit
for bit (parameters, gradients, RNG), a plan is re-traced whenever the model, guide, objective or shapes change, and
programs that cannot be traced keep the eager step."""
import copy
from types import SimpleNamespace

import pyro
import pytest
import torch
from torch import nn

from inference.distributed import LossModule
from inference.objectives import OBJECTIVES, build_objective
from inference import traced_step
from inference.traced_step import TracedSteps
from inference.training import Trainer, TrainConfig
from zoo.cli.assemble import build_components, register_all
from zoo.cli.runs import make_config
from zoo.cli.semi_supervised import model_default
from zoo.errors import ConfigError
from zoo.model import MODELS
from zoo.vae import VAE
from guides.base import build_guide

register_all()

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# their default objective or guide reads tensor values in Python (a host sync a step), which a trace with fake tensors
# refuses: Pyro's TraceEnum_ELBO (m2, m1+m2), the von Mises-Fisher rejection sampler (svae)
EAGER_ONLY = {"m2", "m1+m2", "svae"}
LATENT_DIM = {"infogan": 14}


def _components(name):
    binarize = model_default(name, "binarize", "dynamic")
    data = model_default(name, "data", "mnist5k" if binarize == "none" else "digits")
    hidden = model_default(name, "hidden", (16,))
    options = {"latent_dim": LATENT_DIM.get(name, 2),
               "hidden": None if hidden is None else [min(h, 32) for h in hidden]}
    config = make_config(name, model_default(name, "guide", "diagonal"), model_default(name, "objective", "elbo"),
                         data, binarize, options, TrainConfig(epochs=1), device="cpu")
    return build_components(config, torch.device("cpu"))


def _train_steps(comps, step, tmp_path, n=3, batch=16):
    """n steps of the Trainer from the components' current state and a fixed seed; returns the trainer."""
    trainer = Trainer(comps.model, comps.guide, comps.objective, comps.data,
                      TrainConfig(batch_size=batch, step=step, progress=False, precision="fp32"), str(tmp_path))
    comps.model.train(), comps.guide.train()
    x, y = comps.data.train.x, comps.data.train.y
    torch.manual_seed(7)
    for i in range(n):
        sl = slice(i * batch, (i + 1) * batch)
        trainer.train_step(x[sl], None if y is None else y[sl], 0, i)
    return trainer


def _state(comps):
    return copy.deepcopy((comps.model.state_dict(), comps.guide.state_dict()))


def _parameters_equal(a, b):
    return all(torch.equal(a[part][k], b[part][k]) for part in range(2) for k in a[part])


@pytest.mark.parametrize("name", [e.name for e in MODELS])
def test_traced_steps_equal_eager_steps_bit_for_bit(name, tmp_path):
    """Three steps (eager, traced and checked, replayed) end with exactly the parameters and RNG state of three eager
    steps; every model whose step has no host-side read of values is traced."""
    pyro.enable_validation(False)
    if OBJECTIVES.lookup(model_default(name, "objective", "elbo"))[0].meta.get("adversarial"):
        pytest.skip("two-player objectives step through AdversarialTrainer's own train_step, not traced")
    comps = _components(name)
    x, y = comps.data.train.x[:16], None if comps.data.train.y is None else comps.data.train.y[:16]
    comps.objective.loss(comps.model, comps.guide, x, y)
    start = _state(comps)  # after data-dependent initialisation (actnorm), which the first call does
    _train_steps(comps, "eager", tmp_path / "e")
    eager, eager_rng = _state(comps), torch.get_rng_state()
    comps.model.load_state_dict(start[0]), comps.guide.load_state_dict(start[1])
    comps.objective.loss(comps.model, comps.guide, x, y)  # actnorm reads its loaded `initialized` flag once after a
    # load, as it did before the eager run
    trainer = _train_steps(comps, "traced", tmp_path / "t")
    assert _parameters_equal(eager, _state(comps))
    assert torch.equal(eager_rng, torch.get_rng_state())  # the graph draws the same random numbers
    if name in EAGER_ONLY:
        assert trainer.traced.traced_steps == 0 and trainer.traced.reasons()
    else:
        assert trainer.traced.traced_steps == 2, trainer.traced.reasons()


# ---------------------------------------------------------------------------------------------- invalidation
def _vae_pair(objective="elbo", guide="diagonal"):
    pyro.enable_validation(False)
    torch.manual_seed(0)
    model = VAE(12, latent_dim=3, hidden=(8,))
    g = build_guide(guide, model)
    obj = build_objective(objective)
    return LossModule(model, g, obj), obj


def _eager(lm, x, y=None):
    """The eager step's loss and gradients from the current RNG state (restored afterwards)."""
    rng = torch.get_rng_state()
    params = list(lm.parameters())
    loss = lm(x, y)
    trained = [p for p in params if p.requires_grad]
    grads = dict(zip(map(id, trained), torch.autograd.grad(loss / x.shape[0], trained, allow_unused=True)))
    torch.set_rng_state(rng)
    return loss.detach(), [grads.get(id(p)) for p in params]


def _traced_equals_eager(steps, lm, x):
    want_loss, want_grads = _eager(lm, x)
    loss = steps.step(x)
    assert loss is not None, steps.reasons()
    assert torch.equal(loss, want_loss)
    for p, g in zip(lm.parameters(), want_grads):
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)


def test_a_plan_is_retraced_when_model_guide_objective_or_shapes_change():
    lm, obj = _vae_pair()
    steps = TracedSteps(lm, obj, trace_after=1)
    x = torch.bernoulli(torch.full((6, 12), 0.5))

    def changed(what):
        before = len(steps.plans)
        _traced_equals_eager(steps, lm, x if what != "shape" else x[:4])
        assert len(steps.plans) == before + 1, what  # a new key, traced afresh

    _traced_equals_eager(steps, lm, x)
    _traced_equals_eager(steps, lm, x)  # same key: replayed
    assert len(steps.plans) == 1 and steps.traced_steps == 2
    changed("shape")
    layout = steps.layout
    obj.kl_weight = 0.25  # a plain attribute of the objective (KL warm-up, beta)
    changed("kl weight")
    assert steps.layout is layout  # a change of values: the same attributes are watched
    lm.model.likelihood.eval()  # a training flag
    changed("mode")
    lm.guide.gaussian.heads["z"] = nn.Linear(8, 6)  # a swapped submodule: new parameters get the gradients
    changed("submodule")
    assert steps.layout is not layout  # a change of structure: the new submodule is watched
    lm.guide.gaussian.heads["z"].training = False  # the new submodule is watched from then on
    changed("new submodule's flag")
    lm.guide.gaussian.heads["z"].training = True
    lm.model.note = None  # a new attribute, then an unhashable value in it: a new key, no failure
    changed("attribute added")
    lm.model.note = []
    changed("unhashable value")
    del lm.model.note
    with torch.no_grad():
        lm.model.decoder[0].weight = nn.Parameter(torch.randn(8, 3))  # a new parameter tensor
    changed("parameter")
    handle = lm.model.decoder.register_forward_hook(lambda m, i, out: 2 * out)  # a hook changes what runs
    changed("hook")
    handle.remove()
    lm.model.decoder.requires_grad_(False)  # frozen: no gradients for it any more
    changed("frozen decoder")
    assert all(p.grad is None for p in lm.model.decoder.parameters())
    lm.model.decoder.requires_grad_(True)
    lm.model.prior.dim = lm.model.prior.dim  # unchanged values: the first plans come back, nothing is traced
    before = len(steps.plans)
    lm.model.likelihood.train()
    obj.kl_weight = 1.0
    _traced_equals_eager(steps, lm, x)
    assert len(steps.plans) == before + 1  # only the swapped submodule and parameter make this key new


def test_data_dependent_python_keeps_the_eager_step():
    class Thresholded(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, x, y=None):
            if bool((x @ self.w).sum() > 0):  # a branch on a value: cannot be traced with fake tensors
                return (x @ self.w).pow(2).sum()
            return (x @ self.w).sum()

    lm = Thresholded()
    steps = TracedSteps(lm, SimpleNamespace(), trace_after=1)
    x = torch.randn(4, 3)
    assert steps.step(x) is None
    assert steps.reasons() and steps.reasons()[0].startswith("cannot be traced")
    assert lm.w.grad is None  # nothing half-done: the caller's eager step is the step


def test_custom_backward_and_buffers_are_replayed_exactly():
    """A custom autograd.Function's backward (here: gradient times 3) and BatchNorm's running statistics (buffers
    updated in place by the forward) are part of the graph."""

    class TripleGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t.clone()

        @staticmethod
        def backward(ctx, g):
            return 3 * g

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.bn = nn.Linear(3, 4), nn.BatchNorm1d(4)

        def forward(self, x, y=None):
            h = self.bn(TripleGrad.apply(self.lin(x)))
            return (h * torch.randn_like(h)).pow(2).sum()

    torch.manual_seed(0)
    a = Net()
    b = copy.deepcopy(a)
    steps = TracedSteps(b, SimpleNamespace(), trace_after=1)
    x = torch.randn(5, 3)
    for _ in range(3):
        torch.manual_seed(1)
        loss_a = a(x)
        grads = torch.autograd.grad(loss_a / 5, list(a.parameters()))
        torch.manual_seed(1)
        loss_b = steps.step(x)
        assert loss_b is not None and torch.equal(loss_a.detach(), loss_b)
        assert all(torch.equal(g, p.grad) for g, p in zip(grads, b.parameters()))
        assert torch.equal(a.bn.running_mean, b.bn.running_mean) and torch.equal(a.bn.running_var, b.bn.running_var)
    assert steps.traced_steps == 3


def test_trainer_counts_traced_steps_and_refuses_an_unknown_mode(tmp_path):
    import json

    from zoo.data import load_dataset

    pyro.enable_validation(False)
    data = load_dataset("digits", binarize="dynamic", seed=0)
    torch.manual_seed(0)
    model = VAE(data.dim, latent_dim=2, hidden=(8,))
    guide = build_guide("diagonal", model)
    config = TrainConfig(epochs=2, batch_size=256, step="traced", progress=False)
    trainer = Trainer(model, guide, build_objective("elbo"), data, config, str(tmp_path))
    trainer.fit()
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    full = len(data.train) // 256
    assert len(data.train) % 256
    # the first full batch is eager and traces the second; the last, smaller batch of each epoch is another key,
    # traced at its second use (in epoch 2)
    assert [r["traced_steps"] for r in rows] == [full - 1, full + 1]
    with pytest.raises(ConfigError, match="--step must be one of"):
        TrainConfig(step="fast")  # refused where the configuration is made, before any file is written


def test_the_traced_step_runs_on_the_meta_device():
    """No value is read on the host in a traced step: traced and replayed on the meta device (no values at all), as
    the eager step is in test_meta_device.py."""
    lm, obj = _vae_pair()
    lm.to("meta")
    steps = TracedSteps(lm, obj, trace_after=1)
    x = torch.empty(6, 12, device="meta")
    for _ in range(2):
        loss = steps.step(x)
        assert loss is not None and loss.device.type == "meta" and loss.shape == ()
        assert all(p.grad is not None and p.grad.device.type == "meta" for p in lm.parameters())
    assert steps.traced_steps == 2 and len(steps.plans) == 1


SCALE = {"value": 1.0}  # state no key can watch: a global a user's program reads


def test_a_plan_is_checked_again_and_dropped_when_unwatched_state_changed(monkeypatch):
    class ReadsAGlobal(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, x, y=None):
            return (SCALE["value"] * (x @ self.w) * torch.randn(x.shape[0])).pow(2).sum()

    lm = ReadsAGlobal()
    steps = TracedSteps(lm, SimpleNamespace(), trace_after=1)
    x = torch.randn(4, 3)
    _traced_equals_eager(steps, lm, x)
    steps.recheck()
    _traced_equals_eager(steps, lm, x)  # checked again: still identical, still replayed
    assert steps.traced_steps == 2
    SCALE["value"] = 2.0
    try:
        rng = torch.get_rng_state()
        stale = steps.step(x)  # no recheck asked: the plan replays what it recorded (the global's old value)
        torch.set_rng_state(rng)
        want, _ = _eager(lm, x)
        assert torch.allclose(4 * stale, want)
        assert not torch.equal(stale, want)
        steps.recheck()  # as after every RECHECK_EVERY replays
        assert steps.step(x) is None  # the check finds the difference; this and later steps run eagerly
        assert "no longer reproduced" in steps.reasons()[0]
        assert lm.w.grad is None and steps.step(x) is None
    finally:
        SCALE["value"] = 1.0
    monkeypatch.setattr(traced_step, "RECHECK_EVERY", 3)  # the periodic check runs the eager step beside the plan
    steps = TracedSteps(lm, SimpleNamespace(), trace_after=1)
    calls = []
    monkeypatch.setattr(steps, "_recheck", lambda *a: calls.append(1) or TracedSteps._recheck(steps, *a))
    for _ in range(7):
        _traced_equals_eager(steps, lm, x)
    assert len(calls) == 2 and steps.traced_steps == 7  # replays 3 and 6 of the plan traced at the first step


# ---------------------------------------------------------------------------------------------- two players
TWO_PLAYER = [("gan", "none", "gan", "mnist5k"), ("gan", "none", "gan-ns", "mnist5k"),
              ("gan", "none", "fgan:kl", "mnist5k"), ("gan", "none", "wgan-gp", "mnist5k"),
              ("dcgan", "none", "gan-ns", "mnist5k"), ("infogan", "infogan", "infogan", "mnist5k"),
              ("vae", "implicit", "avb", "digits"), ("vae", "deterministic", "aae", "digits"),
              ("realnvp", "none", "hybrid:0.5", "moons")]


@pytest.mark.parametrize("model, guide, objective, data", TWO_PLAYER, ids=[c[2] + "-" + c[0] for c in TWO_PLAYER])
def test_two_player_traced_steps_equal_eager_steps_bit_for_bit(model, guide, objective, data, tmp_path):
    """Both players' steps (critic, then generator with the critic frozen) traced, each with the other player's
    parameters as inputs of its graph: four steps end with the eager run's generator, guide, critic and RNG."""
    from inference.adversarial_training import AdversarialTrainer

    pyro.enable_validation(False)
    options = {"latent_dim": LATENT_DIM.get(model, 4), "hidden": [16]} | ({"flow_depth": 2} if model == "realnvp"
                                                                         else {})
    binarize = "dynamic" if data == "digits" else "none"
    config = make_config(model, guide, objective, data, binarize, options,
                         TrainConfig(epochs=1, critic="mlp" if model != "dcgan" else None, critic_steps=1),
                         device="cpu")
    comps = build_components(config, torch.device("cpu"))
    x = comps.data.train_epoch_x(0)
    parts = (comps.model, comps.guide, comps.critic)
    comps.objective.generator_step(comps.model, comps.guide, comps.critic, x[:16])  # data-dependent init (actnorm)
    start = copy.deepcopy([p.state_dict() for p in parts])
    results = {}
    for step in ("eager", "traced"):
        for part, state in zip(parts, start):
            part.load_state_dict(state)
        torch.manual_seed(5)
        comps.objective.generator_step(comps.model, comps.guide, comps.critic, x[:16])  # actnorm reads its flag
        trainer = AdversarialTrainer(comps.model, comps.guide, comps.objective, comps.data,
                                     TrainConfig(batch_size=16, step=step, progress=False, precision="fp32",
                                                 critic_steps=1, critic=config["train"].get("critic")),
                                     str(tmp_path / step), critic=comps.critic)
        trainer._begin_epoch()
        for part in parts:
            part.train()
        torch.manual_seed(5)
        for i in range(4):
            trainer.train_step(x[16 * i:16 * (i + 1)], None, 0, i)
            trainer.progress["global_step"] += 1
        results[step] = (copy.deepcopy([p.state_dict() for p in parts]), torch.get_rng_state(), trainer)
    (eager, eager_rng, _), (traced, traced_rng, trainer) = results["eager"], results["traced"]
    for a, b in zip(eager, traced):
        for name in a:
            assert torch.equal(a[name], b[name]), name
    assert torch.equal(eager_rng, traced_rng)
    # each player traced and replayed (a flow's cached log-scale, left by the other player's eager calls, can make a
    # player's first two keys differ: realnvp's generator then traces at its third step)
    assert trainer.traced.traced_steps >= 2 and trainer.traced_critic.traced_steps >= 2, trainer._traced_reasons()


def test_a_cache_that_starts_as_none_does_not_make_every_step_a_new_key():
    """An attribute that is None when first watched and then holds the tensor each forward computes (a flow's cached
    log-scale) is watched as a tensor from then on, by its kind: the step is traced and replayed, not re-keyed."""

    class Caching(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.cache = nn.Linear(3, 2), None

        def forward(self, x, y=None):
            h = self.lin(x)
            self.cache = h
            return (h * torch.randn_like(h)).pow(2).sum()

    lm = Caching()
    steps = TracedSteps(lm, SimpleNamespace(), trace_after=2)
    x = torch.randn(4, 3)
    assert steps.step(x) is None  # the first use of its key is eager
    lm(x)  # as the caller's eager step: the cache now holds a tensor
    assert steps.step(x) is None  # a new key (the cache is watched as a tensor now), its first use
    lm(x)
    for _ in range(3):  # traced at that key's second use, then replayed: the cache no longer changes the key
        _traced_equals_eager(steps, lm, x)
    assert steps.traced_steps == 3 and len(steps.plans) == 1


def test_a_resumed_run_whose_config_names_an_unknown_step_mode_is_one_line_naming_the_file(tmp_path):
    import json

    from inference import run_dir as rd
    from zoo.cli.runs import train_run
    from zoo.errors import RunDirError

    config = make_config("vae", "diagonal", "elbo", "digits", "dynamic", {"latent_dim": 2, "hidden": [8]},
                         TrainConfig(epochs=1, batch_size=256, progress=False), device="cpu")
    out = str(tmp_path / "run")
    train_run(config, out, progress=False)
    saved = json.load(open(rd.path(out, rd.CONFIG)))
    saved["train"]["step"] = "fast"
    saved["train"]["epochs"] = 2
    with pytest.raises(RunDirError, match=r"config\.json holds a training configuration .*--step must be one of"):
        train_run(saved, out, resume=True, progress=False)
