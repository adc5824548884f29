"""The benchmark matrix runner, its psutil sampler and results store, plots and report.

``iobench run`` (iobench.benchmarks.run.cli) expands a profile (iobench.benchmarks.run.matrix) into
cells, runs each one through a launcher (iobench.benchmarks.run.launcher) and writes the
run folder (iobench.benchmarks.results.store).
"""
