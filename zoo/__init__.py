"""pyro-zoo: deep generative models in Pyro. The Python API (:mod:`zoo.api`) mirrors the ``zoo`` command:
``zoo.train``, ``zoo.evaluate``, ``zoo.report``, ``zoo.load`` (imported on first use, so ``import zoo`` stays light)."""

__all__ = ["train", "evaluate", "report", "load", "Run"]


def __getattr__(name):
    if name in __all__:
        from zoo import api

        return getattr(api, name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
