"""The benchmark matrix runner, its psutil sampler and results store, plots and report.

``iobench run`` (benchmarks.cli) expands a profile (benchmarks.profiles) into
cells, runs each one through a launcher (benchmarks.launcher) and writes the
run folder (benchmarks.store).
"""
