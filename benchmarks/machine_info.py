"""What a benchmark figure was measured on: the line every benchmark prints first (:func:`machine_line`).

The CPU's model and instruction sets come from the zoo's own detection (:mod:`zoo.networks.native_bf16`, the one that
decides ``--precision auto``), so a figure and the precision it ran at are explained by the same facts."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository, for `zoo`

import torch  # noqa: E402

from zoo.networks.native_bf16 import cpu_features, cpu_model, resolve_precision  # noqa: E402


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo, else ``lscpu``)."""
    return cpu_model()


def cpu_flags() -> str:
    """``AVX2 yes, AVX-512F no, AVX-512 BF16 no, AMX no`` ("?" where it cannot be told)."""
    return ", ".join(f"{unit} {'?' if has is None else 'yes' if has else 'no'}" for unit, has in cpu_features().items())


def machine_line(device="cpu") -> str:
    """One line: CPU model, its instruction sets that decide the networks' speed (AVX2, AVX-512F, AVX-512 BF16, AMX),
    torch's version and intra-op thread count, the device, and what ``--precision auto`` runs there and why."""
    d = torch.device(device)
    where = str(d)
    if d.type == "cuda" and torch.cuda.is_available():
        where = f"{d} ({torch.cuda.get_device_name(d)})"
    precision, reason = resolve_precision("auto", d)
    return (f"machine: {cpu_name()} ({cpu_flags()}); torch {torch.__version__}, {torch.get_num_threads()} "
            f"thread{'s' if torch.get_num_threads() != 1 else ''}; device {where}; --precision auto -> {precision}: "
            f"{reason.removeprefix('auto: ')}")


if __name__ == "__main__":
    print(machine_line(sys.argv[1] if len(sys.argv) > 1 else "cpu"))
