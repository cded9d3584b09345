"""Bring your own model: Pyro models written outside the zoo's packages (tests/byom/user_models.py), as classes and
as plain functions, get every real-valued guide, elbo and iwae:5, evaluation, report and exact resume, through the
Python API and through ``zoo train --model path.py:attr``; every contract check is one line and exit 2."""
import json
import math
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

import zoo
from guides.base import GUIDES
from inference import run_dir as rd
from inference.objectives import build_objective
from inference.training import TrainConfig, Trainer
from zoo.cli.assemble import build_components, load_run, register_all
from zoo.cli.main import main
from zoo.cli.runs import make_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HERE = os.path.dirname(os.path.abspath(__file__))
USER = os.path.join(HERE, "user_models.py")
ROOT = os.path.dirname(os.path.dirname(HERE))
FAST = ["--data", "digits", "--epochs", "1", "--batch-size", "128", "--no-progress", "--device", "cpu"]


def ref(name):
    return f"{USER}:{name}"


def real_guides():
    register_all()
    specs = []
    for e in GUIDES:
        # density-less guides (implicit, deterministic) have their own objectives; some guides serve one model family
        if ("real" in e.meta.get("supports", ()) and not e.meta.get("discrete") and not e.meta.get("implicit")
                and not e.meta.get("only_for")):
            specs.append(e.name + (":2" if e.arg else ""))
    return specs


def components(model, guide="diagonal", binarize=None, objective="elbo"):
    config = make_config(ref(model), guide, objective, "digits", binarize, {"likelihood": "auto"}, TrainConfig(),
                         device="cpu")
    return build_components(config)


@pytest.mark.parametrize("model, latents", [("LaplaceVAE", {"z": (4,)}), ("laplace_vae", {"z": (4,)}),
                                            ("Hierarchy", {"z1": (3,), "z2": (4,)}),
                                            ("hierarchy", {"z1": (3,), "z2": (4,)})])
def test_every_real_guide_is_built_by_tracing_and_trains_with_elbo_and_iwae(model, latents):
    guides = real_guides()
    assert {"diagonal", "iaf:2", "planar:2", "radial:2", "householder:2", "sylvester-o:2", "sylvester-h:2",
            "sylvester-t:2"} <= set(guides)
    for spec in guides:
        c = components(model, spec)
        sites = c.model.latent_sites()
        assert {s.name: s.value_shape for s in sites} == latents
        if len(sites) == 2:  # the guide conditions z2 on z1: q(z1|x) q(z2|x,z1)
            assert sites[1].depends_on == ("z1",)
        x = c.data.valid.x[:16]
        params = list(c.model.parameters())
        assert params, "the model's networks must be found and trained"
        for objective in ("elbo", "iwae:5"):
            loss = build_objective(objective).loss(c.model, c.guide, x)
            assert torch.isfinite(loss)
            for p in params + list(c.guide.parameters()):
                p.grad = None
            loss.backward()
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params), (spec, objective)
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in c.guide.parameters()), (spec, objective)


def test_traced_latents_of_builtin_models_equal_their_declared_ones():
    from zoo.hvae import HVAE
    from zoo.tracing import trace_structure
    from zoo.vae import VAE

    x = torch.bernoulli(torch.rand(5, 12))
    for model in (VAE(12, latent_dim=3, hidden=(8,)), HVAE(12, latent_dim=3, latent_dim1=2, hidden=(8,))):
        traced = trace_structure(model, x).latents
        declared = model.latent_sites()
        assert [(s.name, s.dim) for s in traced] == [(s.name, s.dim) for s in declared]


def test_constrained_latents_train_through_the_bijection_with_exact_log_q():
    """tau ~ Gamma(2, 2) per point: the diagonal guide samples u in R and hands exp-like(u) to the model; log q of
    the pushed-forward value equals the base log-density minus the log-Jacobian of the bijection."""
    from torch.distributions import biject_to, constraints

    c = components("gamma_scale", "diagonal", binarize="none")
    (site,) = c.model.latent_sites()
    assert site.value_shape == () and site.dim == 1 and site.constraint is not None
    x = c.data.valid.x[:8]
    import pyro.poutine as poutine

    tr = poutine.trace(c.guide).get_trace(x)
    tau, fn = tr.nodes["tau"]["value"], tr.nodes["tau"]["fn"]
    assert tau.shape == (8,) and bool((tau > 0).all())
    t = biject_to(constraints.positive)
    u = t.inv(tau)
    base = fn.base_dist
    expected = base.log_prob(u.unsqueeze(-1)) - t.log_abs_det_jacobian(u, tau)
    assert torch.allclose(fn.log_prob(tau), expected, atol=1e-5)
    before = {k: v.detach().clone() for k, v in c.model.captured.constrained().items()}
    opt = torch.optim.Adam(list(c.model.parameters()) + list(c.guide.parameters()), lr=1e-3)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = build_objective("elbo").loss(c.model, c.guide, c.data.train.x[:256])
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses) and sum(losses[-5:]) < sum(losses[:5])
    assert not torch.allclose(before["m"], c.model.captured.constrained()["m"])


def test_nested_plate_latent_has_its_per_point_shape_and_gets_a_per_point_iwae_bound():
    c = components("nested_plate", "iaf:2", binarize="none")
    (site,) = c.model.latent_sites()
    assert site.value_shape == (3,) and c.model.max_plate_nesting == 2
    x = c.data.valid.x[:6]
    from inference.importance import weight_terms

    terms = weight_terms(c.model, c.guide, x, None, 7)
    assert terms.log_w.shape == (7, 6) and bool(torch.isfinite(terms.log_w).all())


def _exact_linear_gaussian_log_px(model, x):
    p = model.captured.constrained()
    W, b, s = p["W"].detach().double(), p["b"].detach().double(), p["s"].detach().double()
    cov = W @ W.T + s ** 2 * torch.eye(W.shape[0], dtype=torch.float64)
    return torch.distributions.MultivariateNormal(b, cov).log_prob(x.double())


def test_python_api_linear_gaussian_function_model_estimate_matches_the_exact_log_likelihood(tmp_path):
    run = zoo.train(ref("linear_gaussian"), guide="diagonal", data="digits", binarize="none", out=str(tmp_path / "lg"),
                    epochs=3, batch_size=64, device="cpu", progress=False)
    summary = zoo.evaluate(run, samples=2000, progress=False, device="cpu")
    comps = load_run(run.dir, torch.device("cpu"))
    exact = _exact_linear_gaussian_log_px(comps.model, comps.data.test.x)
    points = torch.load(os.path.join(run.dir, rd.EVAL_POINTS), weights_only=True)
    gap = (points["log_px"].double() - exact).abs().mean()
    assert gap < 0.05, f"IS estimate off the exact log p(x) by {float(gap):.4f} nats per point"
    assert abs(summary["nll"]["mean"] + float(exact.mean())) < 0.05
    assert summary["neg_elbo"]["mean"] >= summary["nll"]["mean"] - 1e-6  # the ELBO is below log p(x)


def test_pyro_param_is_trained_saved_and_restored_exactly_on_resume(tmp_path, monkeypatch, capsys):
    full, crashed = str(tmp_path / "full"), str(tmp_path / "crashed")
    argv = ["train", "--model", ref("linear_gaussian"), "--binarize", "none", "--checkpoint-every", "5",
            "--epochs", "2", "--data", "digits", "--batch-size", "128", "--no-progress", "--device", "cpu"]
    assert main(argv + ["--out", full]) == 0

    class Crash(Exception):
        pass

    original = Trainer.fit

    def crashing_fit(self, resume=False, on_step=None):
        def crash(step):
            if step == 17:  # mid second epoch (12 steps an epoch); last checkpoint at step 15
                raise Crash()
        return original(self, resume=resume, on_step=None if resume else crash)

    monkeypatch.setattr(Trainer, "fit", crashing_fit)
    with pytest.raises(Crash):
        main(argv + ["--out", crashed])
    monkeypatch.setattr(Trainer, "fit", original)
    assert main(["train", "--resume", crashed, "--no-progress"]) == 0
    a = torch.load(os.path.join(full, rd.CHECKPOINT), weights_only=True)
    b = torch.load(os.path.join(crashed, rd.CHECKPOINT), weights_only=True)
    assert "captured.pyro_params.W" in a["model"]
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    config = json.load(open(os.path.join(full, rd.CONFIG)))
    assert config["model"]["name"] == ref("linear_gaussian")  # the absolute file reference is recorded
    init = 0.3 * torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(a["model"]["captured.pyro_params.W"], init)  # the pyro.param was trained


@pytest.mark.parametrize("model", ["LaplaceVAE", "hierarchy"])
def test_cli_and_python_runs_of_user_models_evaluate_report_and_resume(model, tmp_path, capsys):
    cli_run = str(tmp_path / "cli")
    assert main(["train", "--model", ref(model), "--guide", "iaf:2", "--objective", "iwae:5", "--out", cli_run]
                + FAST) == 0
    import importlib.util

    spec = importlib.util.spec_from_file_location("user_models_for_api", USER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["user_models_for_api"] = module
    spec.loader.exec_module(module)
    py_run = zoo.train(getattr(module, model), guide="householder:2", data="digits", out=str(tmp_path / "py"),
                       epochs=1, device="cpu", progress=False)
    assert py_run.config["model"]["name"].endswith(f":{model}")
    assert main(["evaluate", cli_run, "--samples", "50", "--no-progress", "--device", "cpu"]) == 0
    report = zoo.report([cli_run, py_run], out=str(tmp_path / "report"), samples=50, device="cpu", progress=False)
    html = open(report.html_path).read()
    assert model in html and "iaf:2" in html and "householder:2" in html
    assert os.path.exists(os.path.join(py_run.dir, rd.EVAL))  # the report evaluated the Python run
    # resume a finished run for more epochs is not asked here; resuming a finished run is a no-op that succeeds
    assert main(["train", "--resume", cli_run, "--no-progress"]) == 0
    del sys.modules["user_models_for_api"]


def test_a_run_whose_code_is_gone_says_so_in_one_line(tmp_path, capsys):
    src = tmp_path / "gone.py"
    shutil.copy(USER, src)
    run = str(tmp_path / "run")
    assert main(["train", "--model", f"{src}:hierarchy", "--out", run] + FAST) == 0
    os.remove(src)
    capsys.readouterr()
    code = main(["evaluate", run, "--samples", "5", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot be imported now" in err[0] and "gone.py" in err[0]


@pytest.mark.parametrize("argv, fragment", [
    (["--model", ref("global_latent"), "--binarize", "none"], "site 'w' is a latent outside pyro.plate('data')"),
    (["--model", ref("no_observed_x"), "--binarize", "none"], "no observed site 'x' (its observed sites: obs)"),
    (["--model", ref("plate_left_of_data"), "--binarize", "none"], "left of the data plate"),
    (["--model", ref("discrete_latent"), "--binarize", "none"], "site 'c' is discrete"),
    (["--model", ref("untracked_tensor"), "--binarize", "none"], "require grad but are not its parameters"),
    (["--model", ref("Hierarchy"), "--guide", ref("hierarchy_guide_missing_z2")], "does not sample the latent 'z2'"),
    (["--model", ref("Hierarchy"), "--guide", ref("hierarchy_guide_extra_site")], "samples 'w', which model"),
    (["--model", ref("Hierarchy"), "--guide", "vmf"], "site 'z1' has support real"),
    (["--model", ref("Hierarchy"), "--model-option", "zz=3"], "has no option 'zz'"),
    (["--model", ref("NoSuchThing")], "has no attribute 'NoSuchThing'"),
    (["--model", "no_such_module_xyz:Model"], "unknown model 'no_such_module_xyz'"),
    (["--model", "no_such_pkg_xyz.models:Model"], "cannot import no_such_pkg_xyz.models:Model"),
])
def test_contract_checks_are_one_line_exit_2(argv, fragment, tmp_path, capsys):
    code = main(["train"] + argv + ["--out", str(tmp_path / "r")] + FAST)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("zoo: error:"), err
    assert fragment in err[0], err[0]


def test_model_option_reaches_the_constructor(tmp_path, capsys):
    run = str(tmp_path / "r")
    assert main(["train", "--model", ref("Hierarchy"), "--model-option", "z1=5", "--out", run] + FAST) == 0
    comps = load_run(run, torch.device("cpu"))
    assert [s.value_shape for s in comps.model.latent_sites()] == [(5,), (4,)]


def test_entry_point_components_are_listed_and_built(tmp_path, monkeypatch, capsys):
    dist_info = tmp_path / "userpkg-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: userpkg\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[pyro_zoo.models]\nlaplace-vae = user_models_ep:LaplaceVAE\n")
    shutil.copy(USER, tmp_path / "user_models_ep.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    from zoo.model import MODELS

    monkeypatch.setattr(MODELS, "_entry_points_loaded", False)
    try:
        assert main(["list"]) == 0
        assert "laplace-vae" in capsys.readouterr().out
        run = str(tmp_path / "r")
        assert main(["train", "--model", "laplace-vae", "--out", run] + FAST) == 0
        assert json.load(open(os.path.join(run, rd.CONFIG)))["model"]["name"] == "laplace-vae"
    finally:
        MODELS._entries.pop("laplace-vae", None)


def test_readme_bring_your_own_model_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    """The README's example, every command as printed, run in this process (`zoo ARGS` through the CLI's own `main`,
    the Python block by exec; a subprocess per command would spend its time importing torch and Pyro again); the
    installed `zoo` command itself is checked to start."""
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text[text.index("## Bring your own model"):text.index("## Components")]
    blocks = re.findall(r"```(python|bash)\n(.*?)```", section, re.S)
    assert [kind for kind, _ in blocks] == ["python", "bash", "python"]
    (tmp_path / "my_model.py").write_text(blocks[0][1])
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    assert shutil.which("zoo", path=env["PATH"]), "the zoo command must be installed (pip install -e .)"
    subprocess.run(["zoo", "--help"], env=env, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ZOO_QUALITY_SAMPLES", "0")  # sample quality: tests of its own
    import shlex

    for line in blocks[1][1].strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "zoo", line
        assert main(argv[1:]) == 0, line
    capsys.readouterr()
    exec(compile(blocks[2][1], "README-example", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "'mean'" in out
    for report in ("report-mine", "report-mine-py"):
        html = open(tmp_path / report / "index.html").read()
        assert "laplace_vae" in html and "vae4" in html
    table = open(tmp_path / "report-mine" / "report.md").read()
    assert "iaf:2" in table and "diagonal" in table
    ev = json.load(open(tmp_path / "runs" / "mine-iaf" / "eval.json"))
    assert ev["protocol"]["num_samples"] == 500 and math.isfinite(ev["nll"]["mean"])


@pytest.mark.parametrize("model, binarize, guide", [("LaplaceVAE", None, "diagonal"), ("laplace_vae", None, "iaf:2"),
                                                    ("hierarchy", None, "diagonal"),
                                                    ("linear_gaussian", "none", "diagonal"),
                                                    ("gamma_scale", "none", "diagonal")])
def test_a_users_model_gets_the_traced_step_bit_for_bit(model, binarize, guide, tmp_path):
    """A user's class or function (pyro.module, pyro.param with a constraint, a positive latent through its
    bijection) is traced like the zoo's own models, and its traced steps equal its eager steps exactly."""
    import copy

    import pyro

    comps = components(model, guide, binarize)
    start = copy.deepcopy((comps.model.state_dict(), comps.guide.state_dict()))
    x = comps.data.train_epoch_x(0)  # as the Trainer streams it (binarized where the model needs it)
    pyro.enable_validation(False)  # as Trainer.fit sets it (validation's value checks cannot be traced)
    results = {}
    for step in ("eager", "traced"):
        comps.model.load_state_dict(start[0]), comps.guide.load_state_dict(start[1])
        trainer = Trainer(comps.model, comps.guide, comps.objective, comps.data,
                          TrainConfig(batch_size=32, step=step, progress=False, precision="fp32"), str(tmp_path / step))
        torch.manual_seed(3)
        for i in range(3):
            trainer.train_step(x[32 * i:32 * (i + 1)], None, 0, i)
        results[step] = (copy.deepcopy((comps.model.state_dict(), comps.guide.state_dict())), trainer)
    (eager, _), (traced, trainer) = results["eager"], results["traced"]
    assert trainer.traced.traced_steps == 2, trainer.traced.reasons()
    for part in range(2):
        assert eager[part].keys() == traced[part].keys()
        for name in eager[part]:
            assert torch.equal(eager[part][name], traced[part][name]), name
