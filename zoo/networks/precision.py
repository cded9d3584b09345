"""Mixed precision: networks may run in bfloat16 under autocast, log-densities never do."""
import torch

_LOW = (torch.bfloat16, torch.float16)


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 when autocast produced a half-precision tensor; float32/float64 tensors are returned as they are."""
    return t.float() if t.dtype in _LOW else t
