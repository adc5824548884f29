"""The one HdrHistogram shape of the project: microseconds, 3 significant digits, up to 60 s.

The load generator records into it, the results loader merges with it and the
tests build fixtures with it; merging needs the same shape everywhere.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

# The longest latency a histogram holds; also the load generator's longest time-out.
MAX_LATENCY_S = 60.0
LOWEST_US = 1
HIGHEST_US = int(MAX_LATENCY_S * 1_000_000)
SIGNIFICANT_DIGITS = 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
