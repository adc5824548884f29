"""``iobench models``: every server model with its I/O family and mechanism."""

from __future__ import annotations

from typing import Any

from iobench.servers.registry import all_models

COLUMNS = ("model", "family", "mechanism", "parameters", "description")


def model_rows() -> list[dict[str, str]]:
    rows = []
    for name, cls in all_models().items():
        reason = cls.unavailable_reason()
        description = cls.description + (f" (unavailable: {reason})" if reason else "")
        family = str(cls.family)
        if cls.reference:
            # Listed, and runnable with `iobench serve`, but not one of the compared models.
            family += " (reference)"
            description += f" (reference, {cls.reference})"
        rows.append({
            "model": name,
            "family": family,
            "mechanism": cls.mechanism,
            "parameters": ", ".join(p.describe() for p in cls.params) or "-",
            "description": description,
        })
    return rows


def markdown_table(rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row[c].replace("|", "\\|") for c in COLUMNS) + " |"
              for row in rows]
    return "\n".join(lines)


def add_arguments(parser: Any) -> None:
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")


def cmd_models(args: Any) -> int:
    rows = model_rows()
    if args.markdown:
        print(markdown_table(rows))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="iobench server models")
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(row[c]) for c in COLUMNS))
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)
    console.print(table)
    return 0

