"""GPU readiness without a GPU: every registered model (with its default guide and objective) and every posterior
flow computes a loss and its gradients on the ``meta`` device. Meta tensors have no values, so a tensor created on a
fixed device, a ``.item()`` or a host-side check of values in the training step fails here as it would cost a
host-device synchronisation (or fail) on a GPU."""
import pyro
import pytest
import torch

from guides.base import GUIDES, build_guide
from inference.objectives import build_objective
from inference.training import TrainConfig
from zoo.cli.assemble import build_components, register_all
from zoo.cli.runs import make_config
from zoo.cli.semi_supervised import model_default
from zoo.model import MODELS
from zoo.vae import VAE

register_all()

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NO_META_KERNEL = {"svae": "torch has no meta kernel for the Beta/Dirichlet sampler of the von Mises-Fisher guide"}
# Pyro's TraceEnum_ELBO reads `mask.all()` of its enumerated probabilities (one host sync a step inside Pyro): models
# whose default objective is `enum` are run here with the zoo's own enumerated IWAE bound instead
ON_META_INSTEAD = {"enum": "iwae-enum:3"}
# a model's registry meta may name its data (the sequence models: data="mnist5k-rows" / "lgssm-synthetic"; mvae:
# "mnist5k-colour"), else digits
# InfoGAN's --latent-dim is G's whole input: its codes (10 classes + 2 continuous) and at least one noise unit
LATENT_DIM = {"infogan": 14}


def _on_meta(model, guide, objective, x):
    model.to("meta"), guide.to("meta")
    loss = objective.loss(model, guide, x.to("meta"), None)
    loss.backward()
    grads = [p.grad for p in list(model.parameters()) + list(guide.parameters()) if p.grad is not None]
    return loss, grads  # parameters the loss does not use (M1's classifier) have none


@pytest.mark.parametrize("name", [e.name for e in MODELS])
def test_every_model_trains_on_the_meta_device(name):
    if name in NO_META_KERNEL:
        pytest.skip(NO_META_KERNEL[name])
    pyro.enable_validation(False)
    hidden = model_default(name, "hidden", (16,))
    options = {"latent_dim": LATENT_DIM.get(name, 2),
               "hidden": None if hidden is None else [min(h, 64) for h in hidden]}
    objective = model_default(name, "objective", "elbo")
    config = make_config(name, model_default(name, "guide", "diagonal"), ON_META_INSTEAD.get(objective, objective),
                         model_default(name, "data", "digits"), model_default(name, "binarize", "dynamic"), options,
                         TrainConfig(epochs=1),
                         device="cpu")
    comps = build_components(config, torch.device("cpu"))
    x = comps.data.train.x[:6]
    if comps.critic is not None:  # implicit generators: their default objective is adversarial
        _two_players_on_meta(comps.model, comps.critic, comps.objective, x)
        return
    comps.objective.loss(comps.model, comps.guide, x, None)  # data-dependent initialisation (actnorm) on real data
    loss, grads = _on_meta(comps.model, comps.guide, comps.objective, x)
    assert loss.device.type == "meta" and loss.shape == ()
    assert grads and all(g.device.type == "meta" for g in grads)


@pytest.mark.parametrize("guide", [f"{e.name}:2" if e.arg else e.name for e in GUIDES
                                   if e.name not in ("none", "semi-supervised", "vmf", "infogan")
                                   and not e.meta.get("sequences") and not e.meta.get("multimodal")])
@pytest.mark.parametrize("objective", ["elbo", "iwae:3"])
def test_every_posterior_guide_trains_on_the_meta_device(guide, objective):
    pyro.enable_validation(False)
    model = VAE(12, latent_dim=3, hidden=(8,))
    g = build_guide(guide, model)
    loss, grads = _on_meta(model, g, build_objective(objective), torch.bernoulli(torch.full((5, 12), 0.5)))
    assert loss.device.type == "meta"
    assert len(grads) == len(list(model.parameters()) + list(g.parameters()))
    assert all(gr.device.type == "meta" for gr in grads)


@pytest.mark.parametrize("guide", [e.name for e in GUIDES if e.meta.get("sequences")])
@pytest.mark.parametrize("objective", ["elbo", "iwae:3"])
def test_every_sequence_guide_trains_on_the_meta_device(guide, objective):
    """The sequence guides (registry meta sequences=True) with a vrnn, on padded sequences of several lengths."""
    from zoo.vrnn import VRNN

    pyro.enable_validation(False)
    model = VRNN(12, (4, 3), latent_dim=2, hidden=(8,), likelihood="gaussian")
    g = build_guide(guide, model)
    x = torch.randn(5, 4, 3)
    x[1, 2:] = float("nan")  # a sequence of length 2: padding
    loss, grads = _on_meta(model, g, build_objective(objective), x.reshape(5, 12))
    assert loss.device.type == "meta"
    assert len(grads) == len({id(p) for p in list(model.parameters()) + list(g.parameters())})
    assert all(gr.device.type == "meta" for gr in grads)


@pytest.mark.parametrize("guide", [e.name for e in GUIDES if e.meta.get("multimodal")])
@pytest.mark.parametrize("objective", ["mvae-subsampled", "iwae:3"])
def test_every_multimodal_guide_trains_on_the_meta_device(guide, objective):
    """The multimodal guides (registry meta multimodal=True) with an mvae, on rows with a missing modality (NaN)."""
    from zoo.multimodal import MVAE, Modality

    pyro.enable_validation(False)
    mods = (Modality("a", 6, (1, 2, 3)), Modality("b", 4, None, "categorical"))
    model = MVAE(10, mods, latent_dim=2, hidden=(8,))
    g = build_guide(guide, model)
    x = torch.cat([torch.rand(5, 6), torch.eye(4)[torch.tensor([0, 1, 2, 3, 0])]], -1)
    x[1, 6:] = float("nan")  # point 1 lacks b
    loss, grads = _on_meta(model, g, build_objective(objective), x)
    assert loss.device.type == "meta"
    assert len(grads) == len({id(p) for p in list(model.parameters()) + list(g.parameters())})
    assert all(gr.device.type == "meta" for gr in grads)


def _two_players_on_meta(model, critic, objective, x):
    """Both players' steps of inference/adversarial_training.py on the meta device: the critic's loss (WGAN-GP's
    gradient penalty included) and the generator's, each with gradients for its own parameters."""
    from inference.adversarial import model_samples

    model.to("meta"), critic.to("meta")
    x = x.to("meta")
    with torch.no_grad():
        fake = model_samples(model, x.shape[0], x)
    critic_loss, estimate = objective.critic_terms(critic, x, fake)
    critic_loss.backward()
    assert critic_loss.device.type == "meta" and estimate.device.type == "meta"
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in critic.parameters())
    generator_loss = objective.generator_loss(critic(model_samples(model, x.shape[0], x)))
    generator_loss.backward()
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in model.parameters())


@pytest.mark.parametrize("objective", ["gan", "gan-ns", "fgan:kl", "fgan:jeffrey", "fgan:alpha:0.5", "wgan-gp"])
@pytest.mark.parametrize("model", ["gan", "dcgan"])
def test_every_adversarial_objective_steps_both_players_on_the_meta_device(model, objective):
    pyro.enable_validation(False)
    config = make_config(model, "none", objective, "mnist5k", "none", {"latent_dim": 4, "hidden": [16]},
                         TrainConfig(epochs=1, critic="mlp" if model == "gan" else None), device="cpu")
    comps = build_components(config, torch.device("cpu"))
    comps.model.train()
    _two_players_on_meta(comps.model, comps.critic, comps.objective, comps.data.train.x[:6])
