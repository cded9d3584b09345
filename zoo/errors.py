"""Errors a user can cause. The CLI prints their message on one line and exits with code 2."""


class ZooError(Exception):
    """Base class: a user-facing error whose message says what is wrong and what to do."""


class UnknownNameError(ZooError):
    """A model, guide, objective, prior or data set name that no registry knows."""


class ConfigError(ZooError):
    """A bad option value or an incompatible combination of options."""


class ContractError(ConfigError):
    """A model or guide that breaks the contract the zoo's guides and bounds rely on (zoo/tracing.py, guides/base.py):
    a latent outside the data plate, a guide that misses a model's latent, no observed site ``x``, ..."""


class DataError(ZooError):
    """Missing, malformed or unsuitable data (wrong shape, non-binary data for a Bernoulli likelihood, ...)."""


class RunDirError(ZooError):
    """A run directory that is missing, incomplete, or belongs to another model."""


class TrainingDiverged(ZooError, FloatingPointError):
    """The training loss became NaN or infinite; the run stopped before writing that state."""
