"""The load generator: drives a server with closed- or open-loop load and measures latency."""

from loadgen.params import LoadParams
from loadgen.runner import SCHEMA, WorkerFailed, run

__all__ = ["SCHEMA", "LoadParams", "WorkerFailed", "run"]
