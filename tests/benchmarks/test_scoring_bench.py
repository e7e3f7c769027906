"""benchmarks/scoring.py measures the scoring child's own peak RSS, not its parent's.

Linux keeps ``ru_maxrss`` across exec, and ``subprocess`` starts children with vfork + exec, so a
child's ``ru_maxrss`` starts at its parent's peak: the benchmark's child once reported the
parent's ~1.8 GB (training, the 1M-row comparison, building the input) as the scorer's peak.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import importlib.util, resource
spec = importlib.util.spec_from_file_location("bench_scoring", "benchmarks/scoring.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(module.own_peak_rss_kb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_child_peak_is_its_own_not_the_parents() -> None:
    size = 1200 * 1024 * 1024
    held = b"\1" * size  # touched pages: the parent's RSS really reaches 1.2 GB
    out = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, check=True
    )
    del held
    own_kb, inherited_kb = (int(x) for x in out.stdout.split())
    # the trap this guards against: the child's ru_maxrss is the parent's 1.2 GB
    assert inherited_kb >= size // 1024
    # the child only imported the benchmark's modules (~0.3 GB)
    assert own_kb < size // 1024 // 2
