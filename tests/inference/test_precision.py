"""--precision auto|fp32|bf16: bf16 only where it is native, a warning with the probe's factor where it is asked for and
not native, and config.json / eval.json recording the precision used and why."""
import contextlib
import json
import os
import re
import warnings

import pytest
import torch

from inference import run_dir as rd
from inference.training import TrainConfig
from zoo.cli.runs import evaluate_run, make_config, train_run
from zoo.errors import ConfigError
from zoo.networks import native_bf16
from zoo.networks.native_bf16 import NATIVE_BF16_ENV, PrecisionWarning, resolve_precision
from zoo.networks.precision import autocast

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny runs: one thread, no OpenMP spinning on shared cores


def test_auto_takes_bf16_only_where_it_is_native(monkeypatch):
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    precision, reason = resolve_precision("auto", "cpu")
    assert precision == "fp32" and reason.startswith("auto: no native bf16") and NATIVE_BF16_ENV in reason
    assert isinstance(autocast("auto", "cpu"), contextlib.nullcontext)
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    precision, reason = resolve_precision("auto", "cpu")
    assert precision == "bf16" and reason.startswith("auto: native bf16")
    assert isinstance(autocast("auto", "cpu"), torch.autocast)
    # the argument wins over the environment; fp32 and the meta device (no values to time) stay fp32
    assert resolve_precision("auto", "cpu", native=False)[0] == "fp32"
    assert resolve_precision("fp32", "cpu", native=True) == ("fp32", "fp32 requested")
    monkeypatch.delenv(NATIVE_BF16_ENV)
    assert resolve_precision("auto", "meta")[0] == "fp32"
    # the real detection: the CPU's flags decide (AMX or AVX-512 BF16)
    native, unit = native_bf16.cpu_native_bf16()
    f = native_bf16.cpu_features()
    assert set(f) == {"AVX2", "AVX-512F", "AVX-512 BF16", "AMX"}
    assert native == bool(f["AMX"] or f["AVX-512 BF16"])
    assert resolve_precision("auto", "cpu")[0] == ("bf16" if native else "fp32")


def test_explicit_bf16_without_native_support_warns_once_with_the_probe_factor(monkeypatch):
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    monkeypatch.setattr(native_bf16, "_WARNED", set())
    rng = torch.get_rng_state()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # Python's own once-per-location filter must not be what keeps it to one
        first = resolve_precision("bf16", "cpu")
        second = resolve_precision("bf16", "cpu")
    assert torch.equal(rng, torch.get_rng_state())  # the probe has its own generator: training seeds are untouched
    ours = [w for w in caught if issubclass(w.category, PrecisionWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    message = str(ours[0].message)
    factor = re.search(r"(\d+\.\d)x as long as in fp32", message)
    assert factor and float(factor.group(1)) > 0 and "running bf16 as asked" in message
    assert first == second and first[0] == "bf16" and "a short probe ran bf16" in first[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fp32 and auto never warn
        resolve_precision("auto", "cpu"), resolve_precision("fp32", "cpu")


@pytest.mark.parametrize("bad", ["fp16", "BF16", ""])
def test_an_unknown_precision_is_a_one_line_config_error(bad, tmp_path):
    with pytest.raises(ConfigError) as e:
        resolve_precision(bad, "cpu")
    assert "\n" not in str(e.value) and "auto, fp32, bf16" in str(e.value) and repr(bad) in str(e.value)
    with pytest.raises(ConfigError, match="precision must be one of"):
        train_run(_config(precision=bad), str(tmp_path / "run"), progress=False)


def test_a_bad_override_is_a_one_line_config_error(monkeypatch):
    monkeypatch.setenv(NATIVE_BF16_ENV, "yes")
    with pytest.raises(ConfigError, match=f"{NATIVE_BF16_ENV} must be 1"):
        resolve_precision("auto", "cpu")


def test_the_cli_refuses_an_unknown_precision_in_one_line(capsys, one_line_error):
    from zoo.cli.main import main

    code = main(["train", "--data", "digits", "--precision", "fp16", "--no-progress"])
    one_line_error(code, capsys.readouterr().err, "fp16", "auto")


def _config(epochs=1, **train):
    cfg = TrainConfig(epochs=epochs, batch_size=128, lr=3e-3, seed=0, progress=False, **train)
    return make_config("vae", "diagonal", "elbo", "digits", "dynamic",
                       {"latent_dim": 2, "hidden": [16], "likelihood": "bernoulli"}, cfg, device="cpu")


def test_config_and_eval_record_the_precision_used_and_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    run = str(tmp_path / "run")
    train_run(_config(), run, progress=False)  # precision "auto", the default
    train = json.load(open(rd.path(run, rd.CONFIG)))["train"]
    assert train["precision"] == "fp32" and train["precision_reason"].startswith("auto: no native bf16")
    protocol = evaluate_run(run, 5, progress=False, quality_samples=0)["protocol"]
    on_disk = json.load(open(rd.path(run, rd.EVAL)))["protocol"]
    assert protocol == on_disk
    assert on_disk["precision"] == "fp32" and on_disk["precision_reason"].startswith("auto: no native bf16")
    # an explicit bf16 there: one `zoo: warning:` line with the probe's factor, and eval.json says why it ran bf16
    from zoo.cli.main import main

    monkeypatch.setattr(native_bf16, "_WARNED", set())
    capsys.readouterr()
    code = main(["evaluate", run, "--samples", "5", "--no-progress", "--quality-samples", "0", "--precision", "bf16"])
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert code == 0 and len(warned) == 1 and warned[0].startswith("zoo: warning: --precision bf16 where it is not")
    assert re.search(r"\d+\.\dx as long as in fp32", warned[0])
    protocol = json.load(open(rd.path(run, rd.EVAL)))["protocol"]
    assert protocol["precision"] == "bf16" and protocol["precision_reason"].startswith("bf16 requested; no native")
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")  # the same run on a machine with native bf16
    protocol = evaluate_run(run, 5, progress=False, quality_samples=0)["protocol"]
    assert protocol["precision"] == "bf16" and protocol["precision_reason"].startswith("auto: native bf16")
    protocol = evaluate_run(run, 5, progress=False, quality_samples=0, precision="fp32")["protocol"]
    assert (protocol["precision"], protocol["precision_reason"]) == ("fp32", "fp32 requested")
    # resumed (extended to 2 epochs) there: the run keeps the precision config.json recorded, not a new auto
    config = json.load(open(rd.path(run, rd.CONFIG)))
    config["train"]["epochs"] = 2
    train_run(config, run, resume=True, progress=False)
    train = json.load(open(rd.path(run, rd.CONFIG)))["train"]
    assert train["epochs"] == 2 and train["precision"] == "fp32" and train["precision_reason"].startswith("auto: no")


def test_a_config_from_before_auto_keeps_working(tmp_path, monkeypatch):
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")  # even where bf16 is native, an old run without the key ran fp32
    run = str(tmp_path / "run")
    config = _config(precision="fp32")
    train_run(config, run, progress=False)
    config = json.load(open(rd.path(run, rd.CONFIG)))
    del config["train"]["precision"], config["train"]["precision_reason"]
    json.dump(config, open(rd.path(run, rd.CONFIG), "w"))
    config["train"]["epochs"] = 2
    train_run(config, run, resume=True, progress=False)
    assert config["train"]["precision"] == "fp32"
    assert os.path.exists(rd.path(run, rd.BEST))
