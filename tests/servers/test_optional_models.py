"""Models whose library is missing stay listed, unavailable, with the reason."""

from __future__ import annotations

import sys

import pytest

from iobench.common.errors import UsageError
from iobench.models import model_rows
from iobench.servers.harness import load_model
from iobench.servers.io_uring import IoUringServer
from iobench.servers.registry import available_models
from iobench.servers.uvloop_server import UvloopServer


@pytest.mark.parametrize(("cls", "module", "extra"), [
    (UvloopServer, "uvloop", "uvloop"),
    (IoUringServer, "liburing", "io-uring"),
])
def test_missing_library_makes_a_model_unavailable_with_the_install_hint(
        monkeypatch: pytest.MonkeyPatch, cls: type, module: str, extra: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # the import now fails
    reason = cls.unavailable_reason()
    assert reason is not None and f"pip install iobench[{extra}]" in reason
    assert cls.name not in available_models()
    row = next(row for row in model_rows() if row["model"] == cls.name)
    assert f"unavailable: {reason}" in row["description"]
    with pytest.raises(UsageError, match="not available here"):
        load_model(cls.name, {})
