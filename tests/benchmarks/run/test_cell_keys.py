"""Cell keys: made in one place from a cell's fields, exact, and never shared by two points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iobench.benchmarks.run.cells import Cell, cell_key, exact
from iobench.benchmarks.run.matrix import Profile, ProfileError, check_spec, expand
from iobench.benchmarks.run.rounds import with_rounds
from iobench.cli import main

REFERENCE = Path(__file__).resolve().parents[3] / "results" / "reference-full"


def test_the_reference_runs_matrix_expands_to_its_stored_keys() -> None:
    """Keys are what --resume and compare match on: an old run's must still come out, each
    planned round of it too; what --precision added are further rounds of the same keys."""
    document = json.loads((REFERENCE / "results.json").read_text())
    profile = Profile(document["profile"], check_spec(document["matrix"], "reference"))
    planned = {cell.ident for cell in with_rounds(
        profile, expand(profile, document["matrix"]["models"]))}
    stored = {(cell["key"], cell["repetition"]) for cell in document["cells"]}
    assert planned <= stored
    assert {key for key, _ in planned} == {key for key, _ in stored}
    if not document.get("precision"):
        assert planned == stored


@pytest.mark.parametrize(("value", "text"), [
    (500.0, "500"), (64, "64"), (0.5, "0.5"), (1234567.0, "1234567"), (1234568.0, "1234568"),
    (0.1234567, "0.1234567"), (1e-05, "1e-05"), (10_000_000.0, "10000000")])
def test_numbers_in_keys_are_exact(value: float, text: str) -> None:
    assert exact(value) == text
    assert float(text) == value


def test_rates_that_differ_in_the_seventh_digit_are_two_cells() -> None:
    spec = check_spec({"open": {"rates_rps": [1234567.0, 1234568.0]}}, "test")
    keys = [cell.key for cell in expand(Profile("test", spec), ["select"])]
    assert keys == ["open/select/r1234567/c4/s64", "open/select/r1234568/c4/s64"]


def test_a_key_shows_only_the_fields_asked_and_set() -> None:
    cell = Cell("", "scale", "epoll", {"x": 1}, "open", 16, size_bytes=64, rate_rps=500.0,
                idle=0)
    assert cell_key(cell, ("idle", "rate_rps", "connections", "size_bytes")) == \
        "scale/epoll(x=1)/i0/r500/c16/s64"
    assert cell_key(cell, ("connections",)) == "scale/epoll(x=1)/c16"
    with pytest.raises(ValueError, match="duration_s"):
        cell_key(cell, ("duration_s",))


@pytest.mark.parametrize(("text", "named"), [
    ("[closed]\nsizes_bytes = [64, 64]\n", "'closed.sizes_bytes' holds 64 twice"),
    ("[open]\nrates_rps = [500, 500.0]\n", "'open.rates_rps' holds 500.0 twice"),
    ("[interval]\nvalues = [0.001, 0.001]\n", "'interval.values' holds 0.001 twice"),
    ("[interval]\nreferences = ['select', 'select']\n", "'interval.references' holds 'select'"),
    ("[neighbour]\nphases = ['idle', 'idle']\n", "'neighbour.phases' holds 'idle' twice"),
    ("[closed]\nconnections = [16]\n[closed.variants]\nselect = [{}]\n",
     "makes the point 'closed/select/c16/s64' twice"),
])
def test_a_profile_that_gives_two_cells_one_key_is_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, named: str) -> None:
    profile = tmp_path / "twice.toml"
    profile.write_text(text)
    code = main(["run", "--profile", str(profile), "--models", "select",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("iobench: error: ") and err.count("\n") == 1
    assert named in err
    assert not (tmp_path / "run").exists()


def test_expand_refuses_two_cells_with_one_key() -> None:
    spec = check_spec({"closed": {"connections": [16], "variants": {"select": [{}]}}}, "test")
    with pytest.raises(ProfileError, match="twice"):
        expand(Profile("test", spec), ["select"])
