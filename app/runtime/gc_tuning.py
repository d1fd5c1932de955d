"""Garbage-collector settings for a long-running streaming worker (applied once it is ready).

Measured (40k deliveries, ``gc.callbacks`` timing each collection): with Python's defaults the
worker spent ~8 s of a 25 s run in the collector, ~30 % of its CPU. The events in flight survive
young collections, and every older collection walks them and every object Faust and the
libraries made at startup. ``gc.freeze()`` moves the startup objects out of the collected
generations and larger thresholds make collections rarer: 0.35 s, and 0.51 -> 0.35 ms of CPU
per delivery. Memory is still reclaimed by reference counting as before; only cyclic garbage
lives a little longer.
"""

from __future__ import annotations

import gc

#: Allocations before a young collection, and young (then middle) collections before the next
#: older one; Python's defaults are 700, 10, 10.
GC_THRESHOLDS = (20_000, 20, 20)


def tune_gc() -> None:
    """Collect once, freeze what survives (startup state), and raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
