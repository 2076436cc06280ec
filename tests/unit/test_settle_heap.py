"""A long-running process settles the garbage collector once started (pulpit.runtime)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# In a child: freezing the test process's own objects would keep them for the whole session.
PROBE = """
import gc
import weakref
from pulpit.runtime import GC_THRESHOLDS, settle_heap

class Cycle:
    def __init__(self):
        self.me = self

cycle = weakref.ref(Cycle())  # garbage that only the collector frees
before = gc.get_count()[0]
settle_heap()
assert gc.get_threshold() == GC_THRESHOLDS, gc.get_threshold()
assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()  # the imports, now never walked
# Freed, not frozen: gc.get_objects() does not list frozen objects, a weak reference tells.
assert cycle() is None, "the garbage was frozen instead of collected"
assert gc.get_count()[0] < before
print("ok")
"""


def test_settle_heap_collects_freezes_and_raises_the_threshold() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
