"""What the benchmarks share: where the books are, timing, peak memory and
the train/test split. A benchmark imports it as `common` (Python puts a
script's own folder first on `sys.path`; the tests get it from pytest's
`pythonpath` setting)."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The books kept beside the repository (never copied into it).
SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Seconds `fn(*args, **kwargs)` took, and what it returned."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def peak_rss_mb() -> float:
    """The process's peak resident memory in MB (Linux: VmHWM, which a
    benchmark can reset between runs), else getrusage's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def split_text(text: str, test_fraction: float) -> tuple[str, str]:
    """Training and test text: cut at the paragraph break nearest before the
    last `test_fraction` of the text."""
    target = int(len(text) * (1 - test_fraction))
    cut = text.rfind("\n\n", 0, target)
    cut = cut if cut > 0 else target
    return text[:cut], text[cut:]
