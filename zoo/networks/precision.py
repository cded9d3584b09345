"""Mixed precision: networks may run in bfloat16 under autocast, log-densities never do."""
import contextlib

import torch

from zoo.networks.native_bf16 import resolve_precision  # noqa: F401 - (precision, reason) for auto/fp32/bf16

_LOW = (torch.bfloat16, torch.float16)


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 when autocast produced a half-precision tensor; float32/float64 tensors are returned as they are."""
    return t.float() if t.dtype in _LOW else t


PRECISIONS = ("fp32", "bf16")  # what runs; ``auto`` resolves to one of them (:mod:`zoo.networks.native_bf16`)
PRECISION_CHOICES = ("auto",) + PRECISIONS


def autocast(precision: str, device_type: str):
    """The context the networks run in: nothing for fp32 (cheaper than a disabled autocast on every step), bfloat16
    autocast for bf16; ``auto`` is resolved for the device first (:func:`resolve_precision`: bf16 only where it is
    native). Log-densities are computed in float32 either way (:func:`full_precision`)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "auto":
        precision, _ = resolve_precision("auto", device_type)
        if precision == "fp32":
            return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    from zoo.errors import ConfigError

    raise ConfigError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}")

