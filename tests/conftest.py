import pyro
import pytest
import torch


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
