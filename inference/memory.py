"""Keep the resident memory of long evaluations bounded on glibc (Linux).

glibc serves large allocations with mmap only up to a *dynamic* threshold: after the first large block is freed, the
threshold rises to its size, and later blocks of that size come from the heap, where freed chunks of varying size
fragment it. An importance-sampling loop allocates and frees tens of MB per chunk of particles thousands of times, so
its peak RSS then grows with K (measured here: 1.0 GB at K=5000, 4.5-11 GB at K=50000, for the same chunk size).
Fixing the threshold at 1 MiB (``mallopt(M_MMAP_THRESHOLD, 1 MiB)``, the same as ``MALLOC_MMAP_THRESHOLD_=1048576``)
returns every large block to the system when freed: peak RSS then stays at ~0.78 GB for any K.
"""
import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3
_done = False


def bound_heap_growth(threshold: int = 1 << 20) -> bool:
    """Fix glibc's mmap threshold (once per process); returns whether it was applied (False off glibc)."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _done = bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    return _done
