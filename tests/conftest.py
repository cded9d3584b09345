import pyro
import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _classifier_cache(tmp_path_factory):
    """The feature classifiers of the sample-quality metrics are cached in one folder per test session (never the
    user's ~/.cache): each is trained once per session, and tests that need a cold cache set ZOO_CACHE_DIR themselves."""
    import os

    saved = os.environ.get("ZOO_CACHE_DIR")
    os.environ["ZOO_CACHE_DIR"] = str(tmp_path_factory.mktemp("zoo-cache"))
    yield
    if saved is None:
        os.environ.pop("ZOO_CACHE_DIR", None)
    else:
        os.environ["ZOO_CACHE_DIR"] = saved


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
