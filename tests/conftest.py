import pyro
import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _sample_quality_settings(tmp_path_factory):
    """Sample-quality metrics in tests: the feature classifiers are cached in one folder per session (never the user's
    ~/.cache), so each is trained once, and `zoo evaluate` draws 200 samples by default instead of 2000 (tests that
    check the metrics pass --quality-samples themselves)."""
    import os

    settings = {"ZOO_CACHE_DIR": str(tmp_path_factory.mktemp("zoo-cache")), "ZOO_QUALITY_SAMPLES": "200"}
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
