"""Synthetic but valid results.json runs for the plot, report and compare tests.

The numbers follow the article's story (busy-poll burns a core, poll-sleep adds
about half an interval and is slow with few connections, select and threads
are quick), with a little per-repetition jitter, and real HdrHistogram
encodings, so the readers are tested on the same shapes the runner writes.
Each cell is built as a :class:`CellRecord` and written with its ``to_json``,
so the factory cannot drift from the format. ``tweak`` lets a test change a
cell's JSON (its metrics, say) to make a claim fail.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from iobench.benchmarks.results.record import SCHEMA_VERSION, CellRecord, Metrics
from iobench.benchmarks.run.matrix import model_label
from iobench.common.histograms import new_histogram

MODELS = ("busy-poll", "poll-sleep", "select", "threads")
DEFAULT_INTERVAL_S = 0.001
INTERVALS_S = (0.0001, 0.001, 0.01)
PLACEMENT = {"server_cpus": [0], "client_cpus": [1]}
MIB = 1024 * 1024

Tweak = Callable[[dict[str, Any]], None]


def latency_histogram(rng: random.Random, base_us: float, extra_us: float,
                      count: int = 400) -> tuple[HdrHistogram, float]:
    """Latencies around ``base_us`` plus a uniform wait in [0, extra_us], with a tail.

    Returns the histogram and the mean (the library's own mean is slow).
    """
    hist = new_histogram()
    total = 0
    for _ in range(count):
        value = base_us * rng.uniform(0.8, 1.3) + rng.uniform(0.0, extra_us)
        if rng.random() < 0.02:
            value *= 4
        hist.record_value(max(1, int(value)))
        total += max(1, int(value))
    return hist, total / count


def nominal(model: str | None, interval_s: float, mode: str, connections: int, size: int,
            rate: float | None) -> dict[str, float]:
    """The metrics a model would show in this point, before jitter."""
    idle_cpu = {"busy-poll": 99.0, "poll-sleep": 6.0}.get(model, 0.05)
    if model == "poll-sleep":
        idle_cpu = min(99.0, 0.006 / max(interval_s, 1e-6) * 1.0)
    base_us = {"busy-poll": 60.0, "select": 80.0, "threads": 90.0}.get(model, 80.0)
    extra_us = interval_s * 1e6 if model == "poll-sleep" else 0.0
    peak = {"busy-poll": 14000.0, "select": 12000.0, "threads": 11000.0}.get(model, 0.0)
    if model == "poll-sleep":
        peak = min(10000.0, connections / (interval_s + 80e-6))
    if size > 1000:
        peak *= 0.7
    threads = connections + 1 if model == "threads" else 1
    rss = 20 * MIB + (connections * 64 * 1024 if model == "threads" else connections * 4096)
    if mode == "idle":
        return {"server_cpu_percent": idle_cpu, "peak_rss_bytes": rss, "peak_threads": threads,
                "throughput_rps": None, "p50_us": None, "p99_us": None,
                "cpu_us_per_request": None}
    throughput = peak if mode == "closed" else float(rate or 0.0)
    busy = 99.0 if model == "busy-poll" else min(95.0, idle_cpu + throughput * 0.006)
    return {"server_cpu_percent": busy, "peak_rss_bytes": rss, "peak_threads": threads,
            "throughput_rps": throughput, "base_us": base_us, "extra_us": extra_us,
            "cpu_us_per_request": busy / 100 * 1e6 / max(throughput, 1.0)}


def cell_key(scenario: str, model: str | None, params: dict[str, Any], connections: int,
             size: int, rate: float | None, phase: str | None) -> str:
    """The key the runner gives this point (iobench.benchmarks.run.matrix.expand)."""
    if model is None:
        return "neighbour/solo"
    label = model_label(model, params)
    if scenario == "idle":
        return f"idle/{label}/c{connections}"
    if scenario == "neighbour":
        if phase == "idle":
            return f"neighbour/{label}/idle"
        return f"neighbour/{label}/load/r{rate:g}/c{connections}/s{size}"
    if scenario in ("open", "interval"):
        return f"{scenario}/{label}/r{rate:g}/c{connections}/s{size}"
    return f"{scenario}/{label}/c{connections}/s{size}"


def make_cell(rng: random.Random, scenario: str, model: str | None, params: dict[str, Any],
              mode: str, connections: int, size: int, rate: float | None,
              repetition: int, phase: str | None = None) -> dict[str, Any]:
    interval = params.get("interval", DEFAULT_INTERVAL_S)
    values = nominal(model, interval, mode, connections, size, rate)
    jitter = rng.uniform(0.97, 1.03)
    metrics: dict[str, Any] = {
        "server_cpu_percent": values["server_cpu_percent"] * jitter,
        "peak_rss_bytes": int(values["peak_rss_bytes"]),
        "peak_threads": int(values["peak_threads"]),
        "peak_fds": connections + 4,
        "throughput_rps": None, "requests": None, "cpu_us_per_request": None,
        "client_cpu_percent": None, "errors": 0,
        "neighbour_ops_per_s": None, "neighbour_ratio": None,
    }
    if model is None:  # the neighbour alone: no server to measure
        metrics.update(server_cpu_percent=None, peak_rss_bytes=None, peak_threads=None,
                       peak_fds=None)
    histogram = None
    if mode != "idle":
        hist, mean_us = latency_histogram(rng, values["base_us"], values["extra_us"])
        histogram = hist.encode().decode()
        throughput = values["throughput_rps"] * jitter
        metrics.update({
            "throughput_rps": throughput,
            "requests": int(throughput * 1.5),
            "cpu_us_per_request": values["cpu_us_per_request"],
            "client_cpu_percent": 60.0,
            "mean_us": mean_us,
            "max_us": hist.get_max_value(),
        })
        percentiles = {"p50_us": 50.0, "p90_us": 90.0, "p99_us": 99.0, "p99_9_us": 99.9}
        values_at = hist.get_percentile_to_value_dict(list(percentiles.values()))
        for name, pct in percentiles.items():
            metrics[name] = float(values_at[pct])
        if mode == "closed" and throughput:
            # A closed loop obeys Little's law, as the loader checks.
            metrics["mean_us"] = connections / throughput * 1e6
    if scenario == "neighbour":
        solo_ops = 1_000_000.0
        ratio = {"busy-poll": 0.5, None: 1.0}.get(model, 0.97)
        metrics["neighbour_ops_per_s"] = solo_ops * ratio * jitter
        metrics["neighbour_ratio"] = ratio * jitter
    if metrics["peak_rss_bytes"] is not None:
        # PSS sits a little under RSS for one process (its shared libraries).
        metrics["rss_bytes"] = metrics["peak_rss_bytes"]
        metrics["pss_bytes"] = int(metrics["peak_rss_bytes"] * 0.9)
        metrics["uss_bytes"] = int(metrics["peak_rss_bytes"] * 0.8)
        metrics["pss_baseline_bytes"] = int(20 * MIB * 0.9)
        if connections:
            metrics["pss_per_connection_bytes"] = (
                (metrics["pss_bytes"] - metrics["pss_baseline_bytes"]) / connections)
    record = CellRecord(
        key=cell_key(scenario, model, params, connections, size, rate, phase),
        scenario=scenario, model=model, params=params, mode=mode,
        connections=connections, size_bytes=size, rate_rps=rate, phase=phase,
        repetition=repetition, placement=PLACEMENT, started="2026-11-28T15:00:00Z",
        duration_s=1.5, metrics=Metrics(**metrics), histogram=histogram,
        cpu_accounting="cgroup2" if model is not None else None)
    return record.to_json()


def make_results(*, repetitions: int = 2, seed: int = 1,
                 closed_connections: tuple[int, ...] = (1, 16, 128),
                 sizes: tuple[int, ...] = (64,),
                 open_rates: tuple[float, ...] = (500.0, 2000.0),
                 scenarios: tuple[str, ...] = ("idle", "closed", "open", "interval",
                                               "neighbour", "scale"),
                 models: tuple[str, ...] = MODELS,
                 tweak: Tweak | None = None) -> dict[str, Any]:
    """A whole results.json document; ``tweak(cell)`` may edit each cell in place."""
    rng = random.Random(seed)
    cells: list[dict[str, Any]] = []
    points: list[tuple[Any, ...]] = []
    for model in models:
        if "idle" in scenarios:
            points += [("idle", model, {}, "idle", c, 64, None, None) for c in (0, 100)]
        if "closed" in scenarios:
            points += [("closed", model, {}, "closed", c, s, None, None)
                       for s in sizes for c in closed_connections]
        if "open" in scenarios:
            points += [("open", model, {}, "open", 4, 64, r, None) for r in open_rates]
        if "neighbour" in scenarios:
            points += [("neighbour", model, {}, "idle", 0, 64, None, "idle"),
                       ("neighbour", model, {}, "open", 4, 64, 200.0, "load")]
    if "neighbour" in scenarios:
        points.insert(0, ("neighbour", None, {}, "idle", 0, 64, None, "solo"))
    if "interval" in scenarios:
        points += [("interval", "poll-sleep", {"interval": i}, "open", 4, 64, 200.0, None)
                   for i in INTERVALS_S]
        points += [("interval", m, {}, "open", 4, 64, 200.0, None)
                   for m in ("select", "busy-poll")]
    for repetition in range(repetitions):
        for point in points:
            cell = make_cell(rng, *point[:7], repetition, phase=point[7])
            if tweak is not None:
                tweak(cell)
            cells.append(cell)
        if "scale" in scenarios:
            for model in (*models, *(m for m in SCALE_EXTRA_MODELS if m not in models)):
                for idle in SCALE_IDLE:
                    cell = scale_cell(rng, model, idle, repetition)
                    if tweak is not None:
                        tweak(cell)
                    cells.append(cell)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": f"20261128T150000Z-synthetic{seed}",
        "profile": "synthetic",
        "started": "2026-11-28T15:00:00Z",
        "finished": "2026-11-28T15:03:00Z",
        "environment": {
            "cpu_model": "Synthetic CPU @ 2.0GHz", "logical_cpus": 2,
            "kernel": "Linux 6.1.0", "python": "3.11.7",
            "packages": {"psutil": "7.2.2", "hdrhistogram": "0.10.8"},
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "hostname": "testhost", "placement": PLACEMENT,
        },
        "matrix": {"repeat": repetitions},
        "cells": cells,
    }


SCALE_IDLE = (0, 1000, 10000)
SCALE_EXTRA_MODELS = ("epoll",)
SCALE_CPU_US = 8.0
SCALE_THROUGHPUT_RPS = 12000.0
SCANNING = ("busy-poll", "poll-sleep", "select", "poll", "sigio")
# What one idle connection adds to a server: a thread's stack pages, or a socket's state.
IDLE_CONNECTION_BYTES = {"threads": 24 * 1024}
# What it adds in the kernel: a socket (about 3.8 KB), and a thread's kernel
# stack and task beside it (about 31 KB), as measured on Linux 6.18.
IDLE_CONNECTION_KERNEL_BYTES = {"threads": 31 * 1024}
SOCKET_KERNEL_BYTES = 3800
KERNEL_BASELINE_BYTES = 200 * 1024


def scale_cell(rng: random.Random, model: str, idle: int, repetition: int) -> dict[str, Any]:
    """A scale cell (16 active connections beside ``idle`` idle ones, closed loop, 64 B).

    A scanning model's CPU per request grows with the crowd (one pass looks at
    every connection); the others' does not. select fails past FD_SETSIZE, as
    the runner records it.
    """
    cell = make_cell(rng, "closed", model, {}, "closed", 16, 64, None, repetition)
    cell["scenario"] = "scale"
    cell["idle_connections"] = idle
    cell["key"] = f"scale/{model}/i{idle}/c16/s64"
    metrics = cell["metrics"]
    if model == "select" and idle > 1000:
        cell.update(status="failed", histogram=None, metrics=Metrics().to_json(),
                    reason=f"select cannot watch {idle + 16} connections: select() takes only "
                           "descriptors below FD_SETSIZE (1024)")
        return cell
    growth = 1 + idle / 250 if model in SCANNING else 1.0
    jitter = rng.uniform(0.97, 1.03)
    metrics["cpu_us_per_request"] = SCALE_CPU_US * growth * jitter
    metrics["throughput_rps"] = SCALE_THROUGHPUT_RPS / growth / jitter
    metrics["server_cpu_percent"] = (metrics["throughput_rps"]
                                     * metrics["cpu_us_per_request"] / 1e4)
    metrics["requests"] = int(metrics["throughput_rps"] * 1.5)
    metrics["mean_us"] = 16 / metrics["throughput_rps"] * 1e6
    added = idle * IDLE_CONNECTION_BYTES.get(model, 1024)
    for name in ("peak_rss_bytes", "rss_bytes", "pss_bytes", "uss_bytes"):
        metrics[name] += added
    metrics["peak_fds"] += idle
    per_connection = IDLE_CONNECTION_KERNEL_BYTES.get(model, SOCKET_KERNEL_BYTES)
    metrics["kernel_baseline_bytes"] = KERNEL_BASELINE_BYTES
    metrics["kernel_bytes"] = KERNEL_BASELINE_BYTES + (16 + idle) * per_connection
    metrics["kernel_bytes_per_connection"] = float(per_connection)
    if metrics.get("pss_per_connection_bytes") is not None:
        metrics["memory_per_connection_bytes"] = (metrics["pss_per_connection_bytes"]
                                                  + per_connection)
    return cell


def write_run(directory: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as ``directory/results.json``; return the folder."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    return directory


def set_metric(model: str, scenario: str, metric: str, value: float,
               *, interval: float | None = None) -> Tweak:
    """A tweak that sets one metric in every matching cell, keeping the cell plausible.

    A closed loop's new throughput comes with the mean latency Little's law
    asks for, so the cell is judged on the claim, not set aside as implausible.
    """
    def apply(cell: dict[str, Any]) -> None:
        if cell["model"] != model or cell["scenario"] != scenario:
            return
        if interval is not None and cell["params"].get("interval") != interval:
            return
        cell["metrics"][metric] = value
        if metric == "throughput_rps" and cell["mode"] == "closed":
            cell["metrics"]["mean_us"] = cell["connections"] / value * 1e6
    return apply


def trimmed_mean(values: Any) -> float:
    """A figure as docs/report.md defines it, computed apart from ``stats`` for the
    tests to check against: the lowest and highest fifth (rounded down) set aside,
    the rest averaged."""
    ordered = sorted(values)
    cut = len(ordered) // 5
    return sum(ordered[cut:len(ordered) - cut]) / (len(ordered) - 2 * cut)
