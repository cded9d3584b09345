import pyro
import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _sample_quality_settings(tmp_path_factory):
    """Sample-quality metrics in tests: the feature classifiers are cached in one folder per session (never the user's
    ~/.cache), so each is trained once, and `zoo evaluate` draws 200 samples by default instead of 2000 (tests that
    check the metrics pass --quality-samples themselves). --precision auto resolves to fp32 on every machine
    ($ZOO_NATIVE_BF16=0), so the tests' numbers do not depend on the CPU's bf16 units."""
    import os

    settings = {"ZOO_CACHE_DIR": str(tmp_path_factory.mktemp("zoo-cache")), "ZOO_QUALITY_SAMPLES": "200",
                "ZOO_NATIVE_BF16": "0"}
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    """Every test starts with an empty param store, Pyro's argument validation on, and a fixed seed."""
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    torch.set_default_dtype(torch.float32)
    yield
    pyro.clear_param_store()


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny models: one intra-op thread avoids OpenMP spinning when the 2 cores are shared (seconds ->
    milliseconds); modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


class _Killed(Exception):
    """Raised by a run's step callback, as a killed process would stop."""


def _killed_run_resumes_bit_for_bit(make_config, tmp_path, crash_step=18, parts=("model", "guide", "critic"),
                                    optimizers=("optimizer", "critic_optimizer"),
                                    metrics=("train_loss", "valid_loss", "critic_loss", "generator_loss"),
                                    saved_step=None):
    """Train ``make_config()`` uninterrupted and again killed after ``crash_step`` (the config checkpoints within the
    epoch) then resumed; assert both end bit for bit alike: every tensor of ``parts`` and of the ``optimizers``'
    state, and every epoch's ``metrics``. Returns (uninterrupted run dir, resumed run dir, both final checkpoints)."""
    import json
    import os

    from inference import run_dir as rd
    from inference.checkpoint import load
    from zoo.cli.runs import train_run

    full, crashed = str(tmp_path / "full"), str(tmp_path / "crashed")
    train_run(make_config(), full, progress=False)

    def crash_at(step):
        if step == crash_step:
            raise _Killed()

    with pytest.raises(_Killed):
        train_run(make_config(), crashed, on_step=crash_at, progress=False)
    if saved_step is not None:
        assert load(os.path.join(crashed, rd.CHECKPOINT))["progress"]["global_step"] == saved_step
    train_run(json.load(open(os.path.join(crashed, rd.CONFIG))), crashed, resume=True, progress=False)
    a, b = load(os.path.join(full, rd.CHECKPOINT)), load(os.path.join(crashed, rd.CHECKPOINT))
    for part in parts:
        assert a[part], f"the checkpoint holds no {part}"
        for name, tensor in a[part].items():
            assert torch.equal(tensor, b[part][name]), f"{part}.{name} differs after resume"
    for part in optimizers:
        for key, per_param in a[part]["state"].items():
            for name, value in per_param.items():
                assert torch.equal(value, b[part]["state"][key][name]), f"{part} {key}.{name}"
    for got, want in zip(rd.read_metrics(crashed), rd.read_metrics(full), strict=True):
        for key in metrics:
            assert got[key] == pytest.approx(want[key], rel=1e-12), key
    return full, crashed, a, b


@pytest.fixture
def killed_run_resumes_bit_for_bit():
    """The kill-and-resume check of the two-player runs (:func:`_killed_run_resumes_bit_for_bit`)."""
    return _killed_run_resumes_bit_for_bit


@pytest.fixture
def one_line_error():
    """Assert a CLI refusal: exit code 2 and one line ``zoo: error: ...`` containing every fragment."""

    def check(code, err, *fragments):
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("zoo: error:"), err
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])

    return check
