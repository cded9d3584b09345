"""Does this device run bfloat16 natively? The answer behind ``--precision auto`` and the machine line of the benchmarks.

bf16 autocast only pays where the hardware multiplies bfloat16: on a CPU, AMX (``amx_bf16``) or AVX-512 BF16
(``avx512_bf16``); on a GPU, compute capability 8.0 or later (Ampere on). Elsewhere PyTorch converts every operand to
float32 and back, and the networks run several times slower than in plain fp32 (6.5x in evaluation on an AVX2-only
AMD EPYC), so ``auto`` keeps fp32 there.

The CPU's instruction sets are read from ``/proc/cpuinfo``'s flags (Linux), else from PyTorch's own CPU probe
(``torch.cpu._is_*_supported``, ``torch.backends.cpu.get_cpu_capability()``). ``$ZOO_NATIVE_BF16`` = 1 or 0 (or the
``native=`` argument of :func:`resolve_precision`) overrides the detection, for tests and for hardware it gets wrong.
"""
import contextlib
import functools
import os
import platform
import statistics
import time
import warnings
from typing import Optional, Tuple

import torch

NATIVE_BF16_ENV = "ZOO_NATIVE_BF16"
PRECISION_CHOICES = ("auto", "fp32", "bf16")
CPU_NO_NATIVE = "no AMX / AVX-512 BF16"


class PrecisionWarning(UserWarning):
    """An explicit ``--precision bf16`` on hardware that does not run bfloat16 natively (slower than fp32)."""


# ------------------------------------------------------------------------------------------------- the CPU
@functools.lru_cache(maxsize=1)
def _proc_cpuinfo() -> Tuple[Optional[frozenset], Optional[str]]:
    """The flags and model name of the first processor in /proc/cpuinfo; (None, None) where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return None, None
    flags, name = None, None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("flags", "Features") and flags is None:  # x86 / ARM
            flags = frozenset(value.split())
        elif key == "model name" and name is None:
            name = value.strip()
        if flags is not None and name is not None:
            break
    return flags, name


def _torch_probe(name: str) -> Optional[bool]:
    fn = getattr(torch.cpu, f"_is_{name}_supported", None)
    try:
        return bool(fn()) if fn is not None else None
    except Exception:  # noqa: BLE001 - a private probe that fails says nothing
        return None


@functools.lru_cache(maxsize=1)
def cpu_features() -> dict:
    """The CPU's instruction sets that matter for the networks' speed: ``{"AVX2", "AVX-512F", "AVX-512 BF16",
    "AMX"}`` -> True/False (None where neither /proc/cpuinfo nor PyTorch can tell). ``AMX`` means AMX-BF16."""
    flags, _ = _proc_cpuinfo()
    if flags is not None and platform.machine().lower() in ("x86_64", "amd64", "i686", "i386"):
        return {"AVX2": "avx2" in flags, "AVX-512F": "avx512f" in flags, "AVX-512 BF16": "avx512_bf16" in flags,
                "AMX": "amx_bf16" in flags}
    try:
        capability = torch.backends.cpu.get_cpu_capability()  # "AVX512", "AVX2", "DEFAULT", "SVE256", ...
    except Exception:  # noqa: BLE001
        capability = None
    avx2, avx512 = _torch_probe("avx2"), _torch_probe("avx512")
    if capability in ("AVX2", "AVX512"):
        avx2 = True if avx2 is None else avx2
    if capability == "AVX512":
        avx512 = True if avx512 is None else avx512
    return {"AVX2": avx2, "AVX-512F": avx512, "AVX-512 BF16": _torch_probe("avx512_bf16"),
            "AMX": _torch_probe("amx_tile")}


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo, else ``lscpu``, else the platform's processor string)."""
    _, name = _proc_cpuinfo()
    if name:
        return name
    try:
        import subprocess

        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_native_bf16() -> Tuple[bool, str]:
    """Whether the CPU multiplies bfloat16 natively, and what says so (``"AMX"``, ``"AVX-512 BF16"`` or
    :data:`CPU_NO_NATIVE`)."""
    f = cpu_features()
    for unit in ("AMX", "AVX-512 BF16"):
        if f.get(unit):
            return True, unit
    return False, CPU_NO_NATIVE


# ------------------------------------------------------------------------------------------------- any device
def _device(device) -> torch.device:
    d = torch.device(device) if not isinstance(device, torch.device) else device
    if d.type == "cuda" and d.index is None and torch.cuda.is_available():
        d = torch.device("cuda", torch.cuda.current_device())
    return d


def _where(d: torch.device) -> str:
    return "this CPU" if d.type == "cpu" else str(d)


def _forced(native: Optional[bool]) -> Optional[Tuple[bool, str]]:
    if native is not None:
        return bool(native), f"{'native bf16' if native else 'no native bf16'} (forced by the caller)"
    text = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if not text:
        return None
    if text not in ("0", "1"):
        from zoo.errors import ConfigError

        raise ConfigError(f"${NATIVE_BF16_ENV} must be 1 (native bf16) or 0 (none), got {text!r}")
    return text == "1", f"{'native bf16' if text == '1' else 'no native bf16'} (forced by ${NATIVE_BF16_ENV}={text})"


def native_bf16(device="cpu", native: Optional[bool] = None) -> Tuple[Optional[bool], str]:
    """``(native, why)`` for ``device``: True where bfloat16 runs natively, False where it is emulated, None where the
    zoo cannot tell (the meta device, mps, ...). ``native`` or ``$ZOO_NATIVE_BF16`` override the detection."""
    d = _device(device)
    forced = _forced(native)
    if forced is not None:
        return forced
    if d.type == "cpu":
        ok, unit = cpu_native_bf16()
        return ok, (f"native bf16 on this CPU ({unit})" if ok else f"no native bf16 on this CPU ({unit})")
    if d.type == "cuda" and torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(d)
        ok = major >= 8
        if ok:
            try:
                with torch.cuda.device(d):
                    ok = torch.cuda.is_bf16_supported(including_emulation=False)
            except TypeError:  # an older torch without including_emulation: the capability decides
                pass
        name = torch.cuda.get_device_name(d)
        return ok, (f"{'native' if ok else 'no native'} bf16 on {d} ({name}, compute capability {major}.{minor}"
                    + ("" if ok else " < 8.0") + ")")
    return None, f"no bf16 detection for the {d.type} device"


@functools.lru_cache(maxsize=None)
def _probe(device_key: str, repeats: int) -> float:
    d = torch.device(device_key)
    g = torch.Generator().manual_seed(0)  # its own generator: the probe never moves the global RNG
    F = torch.nn.functional
    x = torch.randn(256, 32, generator=g).to(d)
    w1, b1 = (torch.randn(256, 32, generator=g) / 6).to(d), torch.zeros(256, device=d)
    w2, b2 = (torch.randn(512, 256, generator=g) / 16).to(d), torch.zeros(512, device=d)
    params = [p.requires_grad_() for p in (w1, b1, w2, b2)]

    def seconds(precision: str) -> float:
        for p in params:
            p.grad = None
        if d.type == "cuda":
            torch.cuda.synchronize(d)
        t0 = time.perf_counter()
        with torch.autocast(d.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext():
            y = F.linear(torch.relu(F.linear(x, w1, b1)), w2, b2)
        y.float().square().mean().backward()
        if d.type == "cuda":
            torch.cuda.synchronize(d)
        return time.perf_counter() - t0

    with torch.inference_mode(False), torch.enable_grad():
        seconds("fp32"), seconds("bf16")  # first calls (kernel selection, allocation) are not timed
        # interleaved pairs: a burst of load from other processes hits both sides of a ratio alike
        ratios = [seconds("bf16") / max(seconds("fp32"), 1e-9) for _ in range(repeats)]
    return statistics.median(ratios)


def bf16_slowdown(device="cpu", repeats: int = 5) -> float:
    """How many times as long a small MLP's forward and backward pass (256 x 32 -> 256 -> 512, ReLU, biases) takes
    under bfloat16 autocast as in float32 on ``device``: the median ratio of ``repeats`` interleaved timings, measured
    once per process and device (a few tens of milliseconds on a quiet CPU). Above 1: bf16 is slower."""
    return _probe(str(_device(device)), repeats)


_WARNED: set = set()


def resolve_precision(requested: str, device="cpu", native: Optional[bool] = None) -> Tuple[str, str]:
    """The precision to run with on ``device`` and why: ``(precision, reason)``, precision "fp32" or "bf16".

    ``auto`` takes bf16 only where the device runs it natively (:func:`native_bf16`), fp32 elsewhere. An explicit
    ``bf16`` is kept; where it is not native a :class:`PrecisionWarning` says once per process and device how much
    slower a short probe (:func:`bf16_slowdown`) ran it. ``fp32`` is kept. Anything else is a one-line
    :class:`zoo.errors.ConfigError`."""
    if requested not in PRECISION_CHOICES:
        from zoo.errors import ConfigError

        raise ConfigError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {requested!r}")
    if requested == "fp32":
        return "fp32", "fp32 requested"
    d = _device(device)
    ok, why = native_bf16(d, native)
    if requested == "auto":
        if ok:
            return "bf16", f"auto: {why}"
        return "fp32", f"auto: {why}" if ok is False else f"auto: fp32 ({why})"
    if ok is False:
        if d.type in ("cpu", "cuda"):
            factor = bf16_slowdown(d)
            reason = f"bf16 requested; {why}: a short probe ran bf16 {factor:.1f}x as long as fp32"
            if str(d) not in _WARNED:
                _WARNED.add(str(d))
                warnings.warn(f"--precision bf16 where it is not native: {why}; a short probe ran a small network "
                              f"{factor:.1f}x as long as in fp32 on {_where(d)}; running bf16 as asked (--precision "
                              f"auto or fp32 would run fp32 there)", PrecisionWarning, stacklevel=2)
            return "bf16", reason
        return "bf16", f"bf16 requested; {why}"
    return "bf16", f"bf16 requested; {why}" if ok else f"bf16 requested ({why})"
