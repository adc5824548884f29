"""The load generator: drives a server with closed- or open-loop load and measures latency."""

from iobench.loadgen.params import LoadParams
from iobench.loadgen.report import ClientReport, LoadReport
from iobench.loadgen.runner import SCHEMA, WorkerFailed, run

__all__ = ["SCHEMA", "ClientReport", "LoadParams", "LoadReport", "WorkerFailed", "run"]
