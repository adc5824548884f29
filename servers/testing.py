"""pytest parameters for suites that run against every registered model.

Used by the conformance tests and by the micro benchmarks in
``benchmarks/micro``; it needs pytest (the ``test`` extra), which nothing
else in the package imports.
"""

from __future__ import annotations

import pytest

from iobench.servers.registry import all_models


def model_params() -> list:
    """Every registered model; one that cannot run here, or a reference model (which
    does not keep the contract), is skipped with its reason."""
    params = []
    for name, cls in all_models().items():
        reason = cls.reference or cls.unavailable_reason()
        marks = [pytest.mark.skip(reason=f"{name}: {reason}")] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params
