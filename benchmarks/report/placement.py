"""Where each side ran: the hosts of a cluster run, and one cell under two placements.

A run across hosts (``iobench run --cluster``) records its placement with
the hosts: the server's, the client hosts', their addresses and every host's
environment. The report lists them (:func:`placement_blocks`), and
:func:`fig_cell_across_placements` draws one cell measured under two
placements (on one machine and across hosts, say) side by side: the only
comparison of different placements iobench makes, and labelled as such.
``iobench compare`` refuses to put two placements in one table.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

from iobench.benchmarks.results.loader import CellGroup, Run

if TYPE_CHECKING:
    from iobench.benchmarks.report.blocks import Block

# Legend labels are wrapped to this many characters: a placement takes a line or two.
LABEL_WIDTH = 90


def is_cluster(placement: dict[str, Any]) -> bool:
    return bool(placement.get("server_host"))


def describe(placement: dict[str, Any]) -> str:
    """One line: where the server and the load generator ran."""
    server_cpus, client_cpus = placement.get("server_cpus"), placement.get("client_cpus")
    if not is_cluster(placement):
        return f"one host: server on CPUs {server_cpus}, load generator on CPUs {client_cpus}"
    addresses = placement.get("addresses") or {}
    clients = ", ".join(f"{h} ({addresses.get(h, '?')})" for h in placement["client_hosts"])
    server = placement["server_host"]
    return (f"across hosts: server on {server} ({addresses.get(server, '?')}) CPUs "
            f"{server_cpus}; load generator on {clients} CPUs {client_cpus}")


def cluster_options(placement: dict[str, Any]) -> str:
    """The ``iobench run`` options that place a run as ``placement`` did ("" if local)."""
    if not is_cluster(placement):
        return ""
    return (f" --cluster {placement.get('cluster')} --server-host {placement['server_host']}"
            f" --client-hosts {','.join(placement['client_hosts'])}")


def placement_blocks(run: Run) -> list[Block]:
    """The report's "Where each side ran" section: one row per host of a cluster run."""
    from iobench.benchmarks.report.blocks import Heading, Paragraph, Table

    placement = run.placement
    if not is_cluster(placement):
        return []
    hosts = run.environment.get("hosts") or {}
    addresses = placement.get("addresses") or {}
    roles: dict[str, list[str]] = {}
    roles.setdefault(placement["server_host"], []).append(
        f"server, CPUs {placement.get('server_cpus')}")
    for host in placement["client_hosts"]:
        roles.setdefault(host, []).append(
            f"load generator shard, CPUs {placement.get('client_cpus')}")
    rows = []
    for host, role in roles.items():
        env = hosts.get(host) or {}
        rows.append([host, addresses.get(host, "?"), "; ".join(role),
                     str(env.get("cpu_model")), str(env.get("kernel")),
                     str(env.get("python"))])
    return [
        Heading(2, "Where each side ran"),
        Paragraph(f"Dask cluster {placement.get('cluster')}. Each client host ran one shard "
                  "of the load generator with an even share of the connections and of the "
                  "open-loop rate; latency histograms of the shards are merged, never "
                  "averaged. The server was sampled on its own host."),
        Table(["host", "address", "ran", "CPU", "kernel", "Python"], rows),
    ]


def common_cell(a: Run, b: Run, key: str | None = None) -> tuple[CellGroup, CellGroup]:
    """The cell to draw from both runs: ``key``, or the first measured in both."""
    groups_b = {g.key: g for g in b.groups}
    for group in a.groups:
        other = groups_b.get(group.key)
        if other is None or (key is not None and group.key != key):
            continue
        if key is not None or (_drawable(group) and _drawable(other)):
            return group, other
    wanted = f"cell {key!r}" if key else "a cell with latencies"
    raise ValueError(f"no {wanted} measured in both {a.run_id} and {b.run_id}")


def _drawable(group: CellGroup) -> bool:
    histogram = None if group.failed else group.merged_histogram
    return histogram is not None and histogram.get_total_count() > 0


def fig_cell_across_placements(a: Run, b: Run, key: str | None = None) -> Any:
    """One cell's latency by percentile in two runs, each labelled with its placement."""
    from iobench.benchmarks.report.plots import (
        SPECTRUM_MAX_INVERSE,
        SPECTRUM_TICKS,
        finish_axes,
        log_axis,
        new_figure,
        spectrum_points,
    )

    group_a, group_b = common_cell(a, b, key)
    fig, (ax,) = new_figure(a, f"One cell, two placements: {group_a.key}")
    all_y: list[float] = []
    for run, group, style in ((a, group_a, "-"), (b, group_b, "--")):
        if not _drawable(group):
            ax.plot([], [], linestyle=style, label=f"{run.run_id}: no latencies "
                    f"({'; '.join(group.failures) or 'not measured'})")
            continue
        xs, ys = spectrum_points(group.merged_histogram)
        all_y += ys
        throughput = group.metric("throughput_rps")
        rate = f", {throughput.value:,.0f} req/s" if throughput else ""
        label = textwrap.fill(f"{describe(run.placement)}{rate} (run {run.run_id})",
                              LABEL_WIDTH, subsequent_indent="  ")
        ax.plot(xs, ys, linestyle=style, linewidth=1.8, label=label)
    ax.set_xscale("log")
    ax.set_xlim(1, SPECTRUM_MAX_INVERSE)
    ax.set_xticks(list(SPECTRUM_TICKS), list(SPECTRUM_TICKS.values()))
    finish_axes(ax, "percentile (log scale of 1/(1-p))", "latency (us)", [], all_y)
    if all_y:
        ax.set_yscale("log")
        log_axis(ax.yaxis, all_y)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    return fig
