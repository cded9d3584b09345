"""The `zoo` command end to end: every user error is one line on stderr with exit code 2; swapping guides; demo."""
import json
import os

import numpy as np
import pytest
import torch

from zoo.cli.main import main

FAST = ["--epochs", "1", "--batch-size", "64", "--latent-dim", "2", "--hidden", "16", "--no-progress"]


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "digits")
    assert main(["train", "--data", "digits", "--out", out, "--device", "cpu"] + FAST) == 0
    return out


def _one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("argv, fragments", [
    (["train", "--model", "nosuch"], ["unknown model 'nosuch'", "vae"]),
    (["train", "--guide", "nosuch"], ["unknown guide 'nosuch'", "diagonal"]),
    (["train", "--objective", "nosuch"], ["unknown objective 'nosuch'", "iwae"]),
    (["train", "--objective", "iwae:0"], ["positive integer"]),
    (["train", "--objective", "elbo:3"], ["takes no ':' argument"]),
    (["train", "--data", "nosuch"], ["unknown data set 'nosuch'", "mnist5k"]),
    (["train", "--data", "/nonexistent/file.npz"], ["/nonexistent/file.npz"]),
    (["train", "--prior", "nosuch"], ["unknown prior 'nosuch'"]),
    (["train", "--guide", "sylvester-o:2", "--guide-option", "num_ortho_vecs=abc"],
     ["guide 'sylvester-o:2' cannot be built with the options num_ortho_vecs=abc"]),
    (["train", "--likelihood", "nosuch"], ["unknown likelihood 'nosuch'"]),
    (["train", "--activation", "nosuch"], ["unknown activation 'nosuch'"]),
    (["train", "--epochs", "0"], ["--epochs", "positive integer"]),
    (["train", "--lr", "-1"], ["--lr", "positive finite number"]),
    (["train", "--lr", "inf"], ["--lr", "positive finite number"]),
    (["train", "--hidden", "4x"], ["--hidden"]),
    (["train", "--device", "cuda"], ["cuda"]),
    (["train", "--device", "tpu"], ["--device must be auto, cpu, cuda or cuda:N"]),
    (["train", "--data", "digits", "--binarize", "none", "--likelihood", "bernoulli"],
     ["Bernoulli likelihood needs binary data", "--binarize"]),
    (["evaluate", "/nonexistent/run"], ["does not exist"]),
    (["sample", "/nonexistent/run"], ["does not exist"]),
    (["nosuchcommand"], ["invalid choice"]),
])
def test_user_errors_are_one_clear_line(argv, fragments, capsys, tmp_path, monkeypatch):
    if argv[:3] == ["train", "--device", "cuda"]:
        import torch

        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if argv[0] == "train":
        argv = argv + ["--out", str(tmp_path / "r")] + FAST
        if "--data" not in argv:
            argv += ["--data", "digits"]
    code, _, err = run(argv, capsys)
    _one_line_error(code, err, *fragments)


def test_missing_offline_dataset_names_the_folder(capsys, tmp_path, monkeypatch):
    import zoo.data.torchvision_sets as tv

    for name in dir(tv):  # force the offline branch whatever the network check is called
        if "network" in name.lower() or "online" in name.lower():
            monkeypatch.setattr(tv, name, lambda *a, **k: False)
    code, _, err = run(["train", "--data", "mnist", "--data-root", str(tmp_path / "empty"),
                        "--out", str(tmp_path / "r")] + FAST, capsys)
    _one_line_error(code, err, str(tmp_path / "empty"))


def test_directory_that_is_not_a_run_and_a_run_of_another_model(digits_run, capsys, tmp_path):
    code, _, err = run(["evaluate", str(tmp_path)], capsys)
    _one_line_error(code, err, "not a zoo run directory")
    code, _, err = run(["train", "--resume", digits_run, "--model", "m2", "--no-progress"], capsys)
    _one_line_error(code, err, "trains model 'vae', not 'm2'")
    # a checkpoint file written by another model, copied into this run directory
    other = str(tmp_path / "other")
    os.makedirs(other)
    cfg = json.load(open(os.path.join(digits_run, "config.json")))
    json.dump(cfg, open(os.path.join(other, "config.json"), "w"))
    import torch

    state = torch.load(os.path.join(digits_run, "best.pt"), weights_only=True)
    state["model_name"] = "glow"
    torch.save(state, os.path.join(other, "best.pt"))
    code, _, err = run(["evaluate", other, "--samples", "5", "--no-progress"], capsys)
    _one_line_error(code, err, "holds a 'glow' model, not 'vae'")
    open(os.path.join(other, "best.pt"), "wb").write(b"not a checkpoint")
    code, _, err = run(["evaluate", other, "--samples", "5", "--no-progress"], capsys)
    _one_line_error(code, err, "not a zoo checkpoint")


def test_unwritable_output_is_one_line(digits_run, capsys):
    code, _, err = run(["sample", digits_run, "-n", "4", "--out", "/nonexistent/folder/x.png"], capsys)
    _one_line_error(code, err, "/nonexistent/folder/x.png", "No such file or directory")


def test_evaluate_and_sample(digits_run, capsys):
    code, out, _ = run(["evaluate", digits_run, "--samples", "20", "--no-progress"], capsys)
    assert code == 0 and "NLL (K=20)" in out
    ev = json.load(open(os.path.join(digits_run, "eval.json")))
    assert ev["protocol"]["num_samples"] == 20 and ev["protocol"]["split"] == "test"
    # log p(x) >= ELBO on average: NLL <= -ELBO
    assert ev["nll"]["mean"] <= ev["neg_elbo"]["mean"] + 1e-6
    assert ev["neg_elbo"]["mean"] == pytest.approx(ev["kl"]["mean"] - ev["recon"]["mean"], rel=1e-6)
    assert ev["protocol"]["precision"] == "fp32"
    code, out, _ = run(["evaluate", digits_run, "--samples", "200", "--no-progress"], capsys)
    nll32 = json.load(open(os.path.join(digits_run, "eval.json")))["nll"]
    code, out, _ = run(["evaluate", digits_run, "--samples", "200", "--no-progress", "--precision", "bf16"], capsys)
    ev16 = json.load(open(os.path.join(digits_run, "eval.json")))
    assert code == 0 and ev16["protocol"]["precision"] == "bf16"
    assert abs(ev16["nll"]["mean"] - nll32["mean"]) < 4 * nll32["se"]  # same estimate up to Monte Carlo error
    points = torch.load(os.path.join(digits_run, "eval_points.pt"), weights_only=True)
    assert points["log_weights"].shape == (ev16["protocol"]["num_points"], 200)  # kept for the arviz export
    code, out, _ = run(["evaluate", digits_run, "--samples", "20", "--no-progress", "--no-log-weights"], capsys)
    points = torch.load(os.path.join(digits_run, "eval_points.pt"), weights_only=True)
    assert code == 0 and "log_weights" not in points and points["log_px"].shape == (ev16["protocol"]["num_points"],)
    code, out, _ = run(["sample", digits_run, "-n", "16"], capsys)
    from PIL import Image

    img = Image.open(os.path.join(digits_run, "samples.png"))
    assert code == 0 and img.size == (4 * 8 + 5 * 2, 4 * 8 + 5 * 2)  # 4x4 grid of 8x8 digits, 2-pixel padding


def test_every_registered_guide_and_objective_trains_the_vae(capsys, tmp_path):
    """Swapping is real: each guide and objective from the registries is chosen by name with the same model."""
    from guides.base import GUIDES
    from inference.objectives import OBJECTIVES
    from zoo.cli.assemble import register_all

    from guides.base import build_guide
    from zoo.errors import ConfigError
    from zoo.vae import VAE

    register_all()
    compatible = []
    for g in GUIDES:
        spec = g.name + (":2" if g.arg else "")
        try:
            build_guide(spec, VAE(64, latent_dim=2, hidden=(16,)))
        except ConfigError as e:  # a guide for other latents (none, discrete) says so in one line
            assert "\n" not in str(e) and "VAE" in str(e)
            continue
        compatible.append(spec)
    assert {"diagonal", "iaf:2", "sylvester-o:2"} <= set(compatible)
    # a density-less guide names the objective it is trained with (implicit: avb, deterministic: aae)
    combos = [(spec, GUIDES.entry(spec).meta.get("objective", "elbo")) for spec in compatible]
    combos += [("diagonal", o.name + (":3" if o.arg else "")) for o in OBJECTIVES if o.name in ("elbo", "iwae")]
    combos = list(dict.fromkeys(combos))  # (diagonal, elbo) once: a second run into its directory is refused
    for guide, objective in combos:
        out = str(tmp_path / f"{guide}-{objective}".replace(":", ""))
        code, _, err = run(["train", "--data", "digits", "--guide", guide, "--objective", objective,
                            "--out", out] + FAST, capsys)
        assert code == 0, err
        cfg = json.load(open(os.path.join(out, "config.json")))
        assert (cfg["guide"], cfg["objective"]) == (guide, objective)
        assert np.isfinite(json.loads(open(os.path.join(out, "metrics.jsonl")).readline())["valid_loss"])


def test_npz_data_from_the_command_line(capsys, tmp_path):
    rng = np.random.default_rng(0)
    path = str(tmp_path / "mine.npz")
    np.savez(path, x=(rng.random((120, 6)) > 0.5).astype(np.float32))
    out = str(tmp_path / "npz")
    code, _, err = run(["train", "--data", path, "--out", out] + FAST, capsys)
    assert code == 0, err
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["model"]["options"]["likelihood"] == "bernoulli"  # `auto` saw binary data
    assert cfg["data"]["info"]["dim"] == 6


def test_demo_leaves_a_complete_run(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_QUALITY_SAMPLES", "0")  # sample quality on mnist5k: tests of its own
    out = str(tmp_path / "demo")
    code, stdout, _ = run(["demo", "--out", out, "--epochs", "1", "--samples", "10", "--no-progress"], capsys)
    assert code == 0
    for name in ("config.json", "metrics.jsonl", "best.pt", "checkpoint.pt", "eval.json", "samples.png"):
        assert os.path.exists(os.path.join(out, name)), name
    assert json.load(open(os.path.join(out, "eval.json")))["protocol"]["data"] == "mnist5k"


def test_list_shows_every_registry(capsys):
    code, out, _ = run(["list"], capsys)
    assert code == 0
    for word in ("vae", "diagonal", "elbo", "iwae:K", "mnist5k", "digits", "standard", "bernoulli"):
        assert word in out
