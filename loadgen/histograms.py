"""Latency histograms: HdrHistograms in microseconds, merged, never averaged.

Workers do not call ``record_value`` per response: it costs about a microsecond
in pure Python, a tenth of the budget at 100,000 requests/s. They count
latencies in a dict (``{latency_us: count}``, a C-speed update) and fold the
dict into a histogram once, after the measured window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hdrh.histogram import HdrHistogram

from iobench.common.histograms import HIGHEST_US, new_histogram

# (JSON field, percentile) in the order the format lists them.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50_us", 50.0),
    ("p90_us", 90.0),
    ("p99_us", 99.0),
    ("p99_9_us", 99.9),
    ("p99_99_us", 99.99),
)


def histogram_from_counts(counts: Mapping[int, int]) -> HdrHistogram:
    """A histogram of ``{latency_us: count}``; latencies beyond the range are clamped to it."""
    histogram = new_histogram()
    for latency_us, count in counts.items():
        histogram.record_value(min(max(latency_us, 0), HIGHEST_US), count)
    return histogram


def merge_encoded(encoded: Iterable[str]) -> HdrHistogram:
    """One histogram holding every count of the encoded ones (workers' histograms)."""
    merged = new_histogram()
    for text in encoded:
        merged.add(HdrHistogram.decode(text))
    return merged


def summarize(histogram: HdrHistogram) -> dict[str, Any]:
    """The ``latency`` object of the JSON: percentiles, max, mean and the encoded histogram."""
    empty = histogram.get_total_count() == 0
    summary: dict[str, Any] = {
        name: (None if empty else float(histogram.get_value_at_percentile(percentile)))
        for name, percentile in PERCENTILES
    }
    summary["max_us"] = None if empty else float(histogram.get_max_value())
    summary["mean_us"] = None if empty else round(histogram.get_mean_value(), 1)
    summary["histogram"] = histogram.encode().decode("ascii")
    return summary
