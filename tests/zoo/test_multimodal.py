"""Several modalities (issue 14): the product-of-experts posterior against the closed-form product of Gaussians (all
present, one missing), the mixture's log q against logmeanexp of the experts and its stratified draws, masks (a point
missing a modality scores exactly as under a model and guide that never had it; marginal evaluation = the one-modality
model's), the sub-sampled objective = the sum of its ELBO terms, training on mnist5k-colour, exact resume, the
command line (npz with named modalities and masks, eval.json's marginals and conditionals), bad input in one line."""
import json
import math
import os

import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch

import guides.multimodal  # noqa: F401  (registers poe, moe)
import inference.multimodal  # noqa: F401  (registers mvae-subsampled)
from guides.base import build_guide
from guides.multimodal import MixtureOfExperts, product_of_experts
from inference.importance import scaled_log_prob, sum_to_points
from inference.objectives import build_objective
from zoo.multimodal import MVAE, Modality, keep_only, presence

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODS = (Modality("a", 5), Modality("b", 3), Modality("c", 4, None, "categorical"))


@pytest.fixture(autouse=True)
def _no_validation():
    pyro.enable_validation(False)
    yield


def _model(mods=MODS, likelihood="gaussian", seed=0):
    torch.manual_seed(seed)
    return MVAE(sum(m.dim for m in mods), mods, latent_dim=3, hidden=(6,), likelihood=likelihood).double()


def _rows(n=4, mods=MODS, seed=1):
    g = torch.Generator().manual_seed(seed)
    parts = []
    for m in mods:
        if m.kind == "categorical":
            parts.append(torch.eye(m.dim, dtype=torch.float64)[torch.randint(m.dim, (n,), generator=g)])
        else:
            parts.append(torch.rand(n, m.dim, generator=g, dtype=torch.float64))
    return torch.cat(parts, -1)


def _gauss_log_density(z, loc, scale):
    return (-0.5 * ((z - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)


# ------------------------------------------------------------------------------------------- poe
def test_product_of_experts_is_the_closed_form_product_of_the_gaussians():
    """q(z|x) of poe is N(mu, s^2) with log q(z) - [log p(z) + sum_m log q_m(z)] constant in z (so q is their product,
    normalised), and (mu, s) equal the product of two Gaussians folded in one at a time; with modality b missing it
    is the prior times the experts of a and c only, whatever b's expert would say."""
    model = _model()
    guide = build_guide("poe", model).double()
    x = _rows()
    loc, scale, present = guide.experts(x)
    assert present.all()
    q = guide.posterior(x)
    z = torch.randn(7, 4, 3, dtype=torch.float64) * 2

    def unnormalised(keep):
        total = _gauss_log_density(z, torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
        for m in keep:
            total = total + _gauss_log_density(z, loc[:, m], scale[:, m])
        return total

    diff = q.log_prob(z) - unnormalised([0, 1, 2])
    torch.testing.assert_close(diff, diff[:1].expand_as(diff), rtol=0, atol=1e-9)  # constant in z: proportional

    def fold(keep):  # N(m1, v1) N(m2, v2) ~ N((m1/v1 + m2/v2) / (1/v1 + 1/v2), 1 / (1/v1 + 1/v2)), from the prior
        m_, v_ = torch.zeros(4, 3, dtype=torch.float64), torch.ones(4, 3, dtype=torch.float64)
        for m in keep:
            v2 = scale[:, m] ** 2
            v_new = 1 / (1 / v_ + 1 / v2)
            m_, v_ = v_new * (m_ / v_ + loc[:, m] / v2), v_new
        return m_, v_.sqrt()

    mu, s = fold([0, 1, 2])
    torch.testing.assert_close(q.base_dist.loc, mu, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(q.base_dist.scale, s, rtol=1e-12, atol=1e-12)
    # b missing (NaN over its slice): the prior times the experts of a and c
    xm = keep_only(x, MODS, ["a", "c"])
    assert presence(xm, MODS).tolist() == [[True, False, True]] * 4
    qm = guide.posterior(xm)
    mu, s = fold([0, 2])
    torch.testing.assert_close(qm.base_dist.loc, mu, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(qm.base_dist.scale, s, rtol=1e-12, atol=1e-12)
    diff = qm.log_prob(z) - unnormalised([0, 2])
    torch.testing.assert_close(diff, diff[:1].expand_as(diff), rtol=0, atol=1e-9)
    assert not torch.allclose(qm.base_dist.loc, q.base_dist.loc)
    # one modality alone: that expert times the prior; none: the prior
    q1 = guide.posterior(keep_only(x, MODS, ["b"]))
    mu, s = fold([1])
    torch.testing.assert_close(q1.base_dist.loc, mu, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(q1.base_dist.scale, s, rtol=1e-12, atol=1e-12)
    l0, s0 = product_of_experts(loc, scale, torch.zeros_like(present))
    assert torch.equal(l0, torch.zeros_like(l0)) and torch.equal(s0, torch.ones_like(s0))


# ------------------------------------------------------------------------------------------- moe
def test_mixture_of_experts_log_q_is_logmeanexp_of_the_present_experts_and_its_draws_are_stratified():
    model = _model()
    guide = build_guide("moe", model).double()
    x = _rows()
    x[1] = keep_only(x[1:2], MODS, ["a", "c"])[0]  # point 1 lacks b
    x[2] = keep_only(x[2:3], MODS, ["c"])[0]  # point 2 has c only
    loc, scale, present = guide.experts(x)
    q = guide.posterior(x)
    z = torch.randn(6, 4, 3, dtype=torch.float64)
    for i in range(4):
        experts = [_gauss_log_density(z[:, i], loc[i, m], scale[i, m]) for m in range(3) if present[i, m]]
        by_hand = torch.stack(experts).exp().mean(0).log()
        torch.testing.assert_close(q.log_prob(z)[:, i], by_hand, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(q.log_prob(z)[:, 2], _gauss_log_density(z[:, 2], loc[2, 2], scale[2, 2]), rtol=0,
                               atol=1e-12)  # one present expert: exactly its density
    # stratified: M = 3 draws of a point with every expert use each expert once; absent experts are never used
    torch.manual_seed(0)
    chosen = q.expand(torch.Size([3, 4])).expert_choice(torch.Size([3, 4]))
    assert sorted(chosen[:, 0].tolist()) == [0, 1, 2] and sorted(chosen[:, 3].tolist()) == [0, 1, 2]
    assert (chosen[:, 1] != 1).all() and (chosen[:, 2] == 2).all()
    many = q.expand(torch.Size([3000, 4])).expert_choice(torch.Size([3000, 4]))
    share = (many[:, 1] == 0).double().mean().item()  # point 1: experts a and c, half each
    assert abs(share - 0.5) < 0.05
    draws = q.expand(torch.Size([3, 4])).rsample()
    assert draws.shape == (3, 4, 3) and torch.isfinite(draws).all()
    # no modality at all: the prior
    empty = MixtureOfExperts(loc[:1], scale[:1], torch.zeros_like(present[:1]))
    torch.testing.assert_close(empty.log_prob(z[:, :1]), _gauss_log_density(z[:, :1], torch.zeros(3).double(),
                                                                           torch.ones(3).double()), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------- masks
def _log_w_given(model, guide, x, z):
    """(B,) log p(x, z) - log q(z | x) at the latent values z, every site scored with its scale and mask."""
    values = {"z": z}
    guide_trace = poutine.trace(poutine.condition(guide, data=values)).get_trace(x)
    model_trace = poutine.trace(poutine.condition(model, data=values)).get_trace(x)
    shape = (x.shape[0],)
    total = sum(sum_to_points(scaled_log_prob(s), shape) for n, s in model_trace.nodes.items()
                if s["type"] == "sample" and n != "data")
    return total - sum_to_points(scaled_log_prob(guide_trace.nodes["z"]), shape)


def _sub_model(model, guide_name, keep):
    """A model (and its guide) with only the modalities ``keep`` (indices), sharing the big model's weights."""
    mods = tuple(model.modalities[i] for i in keep)
    small = _model(mods)
    for j, i in enumerate(keep):
        small.decoders[j].load_state_dict(model.decoders[i].state_dict())
    return small


@pytest.mark.parametrize("guide_name", ["poe", "moe"])
def test_a_point_missing_a_modality_scores_as_under_a_model_that_never_had_it(guide_name):
    """Exact: the log-weight of rows lacking b (NaN) equals that of a model and guide built for (a, c) alone with the
    same weights, at the same z; the ELBO losses agree under the same seed, with finite gradients; and the marginal
    evaluation of a (importance sampling with the others masked) equals the a-only model's joint evaluation."""
    from inference.evaluation import importance_sample

    model = _model()
    guide = build_guide(guide_name, model).double()
    small = _sub_model(model, guide_name, [0, 2])
    small_guide = build_guide(guide_name, small).double()
    for j, i in enumerate([0, 2]):
        small_guide.encoders[j].load_state_dict(guide.encoders[i].state_dict())
        small_guide.heads[j].load_state_dict(guide.heads[i].state_dict())
    x = _rows(5)
    xm = keep_only(x, MODS, ["a", "c"])
    x_small = torch.cat([x[:, :5], x[:, 8:]], -1)
    z = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(_log_w_given(model, guide, xm, z), _log_w_given(small, small_guide, x_small, z),
                               rtol=0, atol=1e-10)
    assert not torch.allclose(_log_w_given(model, guide, x, z), _log_w_given(model, guide, xm, z))
    losses = []
    for m, g, data in ((model, guide, xm), (small, small_guide, x_small)):
        m.zero_grad(), g.zero_grad()
        torch.manual_seed(3)
        loss = build_objective("elbo").loss(m, g, data)
        loss.backward()
        losses.append(loss.detach())
        assert all(torch.isfinite(p.grad).all() for p in list(m.parameters()) + list(g.parameters())
                   if p.grad is not None)
    if guide_name == "poe":  # moe picks its expert among 3 or 2 (other draws); the log-weights above are equal
        torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=1e-10)
    assert all(p.grad is None or not p.grad.any() for p in model.decoders[1].parameters())  # b: no gradient
    # the marginal log p(x_a) of the three-modality model is the a-only model's log p(x_a), sample for sample
    only_a = _sub_model(model, guide_name, [0])
    only_a_guide = build_guide(guide_name, only_a).double()
    only_a_guide.encoders[0].load_state_dict(guide.encoders[0].state_dict())
    only_a_guide.heads[0].load_state_dict(guide.heads[0].state_dict())
    torch.manual_seed(5)
    marginal = importance_sample(model, guide, keep_only(x, MODS, ["a"]), num_samples=50, batch_size=5)["log_px"]
    torch.manual_seed(5)
    alone = importance_sample(only_a, only_a_guide, x[:, :5], num_samples=50, batch_size=5)["log_px"]
    np.testing.assert_allclose(marginal, alone, rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------------------- objective, training
def test_the_subsampled_objective_is_the_sum_of_its_elbo_terms():
    """mvae-subsampled = ELBO(a, b, c) + ELBO(a) + ELBO(b) + ELBO(c), each the elbo objective on rows masked by hand
    (same seed, same draws); a point lacking b enters the joint term only through its present modalities, and a point
    with one modality enters once (its joint term dropped)."""
    model = _model()
    guide = build_guide("poe", model).double()
    x = _rows(4)
    x[1, 5:8] = float("nan")  # lacks b
    x[2, :8] = float("nan")  # c only
    elbo = build_objective("elbo")

    def masked(keep_cols, drop_rows=()):
        out = torch.full_like(x, float("nan"))
        out[:, keep_cols] = x[:, keep_cols]
        out[list(drop_rows)] = float("nan")
        return out

    a, b, c = list(range(5)), list(range(5, 8)), list(range(8, 12))
    torch.manual_seed(11)
    expected = (elbo.loss(model, guide, masked(a + b + c, [2])) + elbo.loss(model, guide, masked(a))
                + elbo.loss(model, guide, masked(b)) + elbo.loss(model, guide, masked(c)))
    torch.manual_seed(11)
    got = build_objective("mvae-subsampled").loss(model, guide, x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-9)
    # a row with nothing present adds exactly 0 (the guide is the prior, KL 0, no observation)
    torch.manual_seed(12)
    one = elbo.loss(model, guide, masked(a)[:1])
    torch.manual_seed(12)
    with_empty = elbo.loss(model, guide, torch.cat([masked(a)[:1], torch.full_like(x[:1], float("nan"))]))
    torch.testing.assert_close(one, with_empty, rtol=0, atol=1e-12)


def test_mvae_trains_on_mnist5k_colour_with_missing_modalities():
    from zoo.data import load_dataset

    data = load_dataset("mnist5k-colour:0.5")
    assert data.dim == 3136 and [m.name for m in data.modalities] == ["colour", "grey"]
    p = presence(data.train.x, data.modalities)
    assert abs((~p).any(-1).double().mean().item() - 0.5) < 1e-3 and p.any(-1).all()
    assert presence(data.test.x, data.modalities).all()
    first = data.test.x[0]
    torch.testing.assert_close(first[:2352].reshape(3, 784).max(0).values, first[2352:], rtol=1e-6, atol=1e-6)
    torch.manual_seed(0)
    model = MVAE(data.dim, data.modalities, latent_dim=4, hidden=(16,))
    model.check_data(data.train.x, "the training split")
    for name in ("poe", "moe"):
        guide = build_guide(name, model)
        objective = build_objective("mvae-subsampled")
        opt = torch.optim.Adam(list(model.parameters()) + list(guide.parameters()), lr=1e-2)
        held = data.valid.x[:32]
        with torch.no_grad():
            before = objective.loss(model, guide, held).item() / 32
        for step in range(4):
            loss = objective.loss(model, guide, data.train.x[step * 32:(step + 1) * 32]) / 32
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            after = objective.loss(model, guide, held).item() / 32
        assert math.isfinite(after) and after < before - 100, (name, before, after)
    assert model.sample(3, held).shape == (3, 3136)


# ------------------------------------------------------------------------------------------- runs
def _config(epochs=2, data="mnist5k-label:0.5", guide="poe", **train):
    from inference.training import TrainConfig
    from zoo.cli.runs import make_config

    cfg = TrainConfig(epochs=epochs, batch_size=500, lr=3e-3, seed=7, progress=False, validate=True, **train)
    return make_config("mvae", guide, "mvae-subsampled", data, None, {"latent_dim": 3, "hidden": [16],
                                                                       "likelihood": "auto"}, cfg, device="cpu")


@pytest.mark.parametrize("guide", ["poe", "moe"])
def test_resume_of_an_mvae_run_after_a_crash_mid_epoch_gives_the_same_parameters(tmp_path, guide,
                                                                                  killed_run_resumes_bit_for_bit):
    # 4000 points / 500 = 8 steps an epoch: killed mid second epoch (step 11), last checkpoint at step 10
    *_, a, b = killed_run_resumes_bit_for_bit(lambda: _config(guide=guide, checkpoint_every=5), tmp_path, crash_step=11, parts=("model", "guide"),
                                              optimizers=("optimizer",), metrics=("train_loss", "valid_loss"),
                                              saved_step=10)
    assert a["progress"]["global_step"] == b["progress"]["global_step"] == 16


def _npz(tmp_path, name="mm.npz", n=60, **override):
    rng = np.random.default_rng(0)
    arrays = {"modality_image": rng.random((n, 4, 4)).astype(np.float32),
              "modality_label": rng.integers(0, 3, size=n),
              "mask_label": (rng.random(n) > 0.3).astype(np.int64),
              "y": rng.integers(0, 3, size=n)}
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = str(tmp_path / name)
    np.savez(path, **arrays)
    return path


def test_npz_modalities_train_and_evaluate_marginals_and_conditionals(tmp_path, capsys):
    from zoo.cli.main import main
    from zoo.data import load_dataset

    path = _npz(tmp_path)
    data = load_dataset(path)
    assert [(m.name, m.dim, m.shape, m.kind) for m in data.modalities] == [
        ("image", 16, (1, 4, 4), "continuous"), ("label", 3, None, "categorical")]
    assert data.image_shape is None and data.dim == 19
    p = torch.cat([presence(s.x, data.modalities) for s in (data.train, data.valid, data.test)])
    assert p[:, 0].all() and 0 < (~p[:, 1]).sum() < 60
    run = str(tmp_path / "run")
    assert main(["train", "--model", "mvae", "--data", path, "--epochs", "2", "--batch-size", "16", "--latent-dim",
                 "2", "--hidden", "8", "--no-progress", "--out", run]) == 0
    assert main(["evaluate", run, "--samples", "30", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "NLL image" in out and "NLL label|image" in out and "NLL image|label" in out
    summary = json.load(open(os.path.join(run, "eval.json")))
    mm = summary["multimodal"]
    assert set(mm["marginal_nll"]) == {"image", "label"} and set(mm["conditional_nll"]) == {"label|image",
                                                                                          "image|label"}
    points = torch.load(os.path.join(run, "eval_points.pt"), weights_only=True)
    full = torch.isfinite(data.test.x).all(-1).numpy()
    cond = -(points["log_px"].numpy() - points["log_p_image"].numpy())[full]
    assert mm["conditional_nll"]["label|image"]["mean"] == pytest.approx(cond.mean())
    assert mm["marginal_nll"]["label"]["points"] == int(full.sum())
    assert "multimodal" in summary["sample_quality_reason"]


def test_bad_multimodal_input_is_one_line(tmp_path, capsys, one_line_error):
    from zoo.cli.main import main

    fast = ["--epochs", "1", "--no-progress", "--latent-dim", "2", "--hidden", "8"]

    def run(*argv):
        code = main(["train", *argv, *fast, "--out", str(tmp_path / "run"), "--overwrite"])
        return code, capsys.readouterr().err

    path = _npz(tmp_path, "gone.npz", mask_label=np.zeros(60, np.int64))
    one_line_error(*run("--model", "mvae", "--data", path), "modality 'label' is missing from every point")
    one_line_error(*run("--model", "mvae", "--data", "digits"), "model mvae is for multimodal data")
    one_line_error(*run("--model", "vae", "--data", "mnist5k-label"), "holds several modalities", "mvae")
    one_line_error(*run("--model", "vae", "--guide", "poe", "--data", "digits"), "for multimodal models")
    one_line_error(*run("--model", "mvae", "--data", "mnist5k-label:1.5"), "fraction")
    path = _npz(tmp_path, "nan.npz", modality_image=np.where(np.arange(16).reshape(1, 4, 4) == 3, np.nan,
                                                             np.ones((60, 4, 4))).astype(np.float32))
    one_line_error(*run("--model", "mvae", "--data", path), "NaN/inf inside")


# ------------------------------------------------------------------------------------------- DDP
def _ddp_worker(rank, world, port, data, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    pyro.enable_validation(False)
    from inference.distributed import init_from_env, shutdown
    from inference.training import TrainConfig, Trainer
    from zoo.cli.assemble import build_components
    from zoo.cli.runs import make_config

    init_from_env("cpu")
    config = make_config("mvae", "moe", "mvae-subsampled", data, None,
                         {"latent_dim": 2, "hidden": [8], "likelihood": "gaussian"},
                         TrainConfig(epochs=2, batch_size=8, lr=1e-2, seed=3, progress=False), device="cpu")
    pyro.set_rng_seed(3)
    comps = build_components(config, torch.device("cpu"))
    os.makedirs(out, exist_ok=True)
    Trainer(comps.model, comps.guide, comps.objective, comps.data, TrainConfig(**config["train"]), out, "mvae",
            config).fit()
    params = torch.cat([v.flatten() for _, v in sorted({**comps.model.state_dict(),
                                                          **comps.guide.state_dict()}.items())])
    torch.save({"params": params}, os.path.join(out, f"rank{rank}.pt"))
    shutdown()


def test_two_process_mvae_training_keeps_the_ranks_identical(tmp_path):
    """DDP (gloo, 2 processes) with the moe guide and the sub-sampled objective on rows with a missing modality: the
    masks travel with each rank's shard, gradients are averaged, both ranks end with the same parameters, which moved."""
    import socket

    import torch.multiprocessing as mp

    from inference.checkpoint import load

    path = _npz(tmp_path, n=60)
    out = str(tmp_path / "ddp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(2, port, path, out), nprocs=2, start_method="spawn")
    ranks = [torch.load(os.path.join(out, f"rank{r}.pt"), weights_only=True)["params"] for r in range(2)]
    assert torch.equal(ranks[0], ranks[1]) and torch.isfinite(ranks[0]).all()
    state = load(os.path.join(out, "checkpoint.pt"))
    assert state["progress"]["global_step"] == 6  # 48 training rows / (2 ranks x 8) = 3 steps an epoch, 2 epochs
