"""The report's blocks (headings, paragraphs, tables, figures, folded details) and their
two renderers, Markdown and self-contained HTML.

The report's content is assembled as a list of these blocks once
(``iobench.benchmarks.report.document``) and rendered twice, so REPORT.md and
report.html say exactly the same thing; nothing here knows what a run holds.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from iobench.benchmarks.report.claims import Verdict


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Code:
    text: str


@dataclass
class Table:
    """``numeric`` columns are right-aligned, the rest left-aligned."""

    headers: list[str]
    rows: list[list[str]]
    numeric: tuple[int, ...] = ()


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class Details:
    """Folded content: HTML ``<details>``, which Markdown renderers such as GitHub's keep."""

    summary: str
    blocks: list[Block]


@dataclass
class SideBySide:
    """Text beside its figure in HTML (stacked on narrow screens); one after the other in
    Markdown."""

    blocks: list[Block]
    figure: Figure | None


Block = Heading | Paragraph | Bullets | Code | Table | Figure | Details | SideBySide


def markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Iterable[Block], base: Path) -> str:
    out: list[str] = []
    for block in blocks:
        match block:
            case Heading(level, text):
                out.append(f"{'#' * level} {text}")
            case Paragraph(text):
                out.append(text)
            case Bullets(items):
                out.append("\n".join(f"- {item}" for item in items))
            case Code(text):
                out.append(f"```\n{text}\n```")
            case Table(headers, rows, numeric):
                lines = ["| " + " | ".join(map(markdown_cell, headers)) + " |",
                         "|" + "|".join("---:" if i in numeric else "---" for i in
                                        range(len(headers))) + "|"]
                lines += ["| " + " | ".join(map(markdown_cell, r)) + " |" for r in rows]
                out.append("\n".join(lines))
            case Figure(path, caption):
                out.append(f"![{caption}]({path.relative_to(base).as_posix()})")
            case Details(summary, inner):
                out.append(f"<details><summary>{html.escape(summary)}</summary>\n\n"
                           + to_markdown(inner, base).rstrip("\n") + "\n\n</details>")
            case SideBySide(inner, figure):
                out.append(to_markdown([*inner, *([figure] if figure else [])],
                                       base).rstrip("\n"))
    return "\n\n".join(out) + "\n"


def inline_html(text: str) -> str:
    """Escape, then the two bits of Markdown the report uses: `code` and **bold**."""
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


# Wide tables scroll inside their own box, so the page itself never gets wider
# than the window; a claim sits beside its figure when there is room for both.
HTML_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1320px; margin: 1em auto; padding: 0 1em;
       color: #222; line-height: 1.35; }
h1 { font-size: 1.5em; margin: 0.3em 0; } h2 { margin-top: 1.6em; }
.table { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: #f3f3f3; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
figure { margin: 0.5em 0 1.5em; } img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; }
.side { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1.1fr); gap: 1.2em;
        align-items: start; border-top: 1px solid #ddd; }
.side h3 { margin: 0.5em 0 0.3em; } .side ul { font-size: 0.9em; padding-left: 1.2em; }
@media (max-width: 900px) { .side { grid-template-columns: minmax(0, 1fr); } }
details { margin: 0.5em 0 1.5em; } summary { cursor: pointer; color: #1F4E79; }
td.holds { background: #e3f4e6; } td.does-not-hold { background: #fbe3e0; }
td.inconclusive { background: #fff3d6; } td.holds, td.does-not-hold, td.inconclusive {
  font-weight: 600; white-space: nowrap; }
code { overflow-wrap: anywhere; }
"""


def verdict_class(text: str) -> str:
    """' class="holds"' for a cell that is a verdict, so the page colours it; '' otherwise."""
    verdicts = {str(v) for v in Verdict}
    return f" class=\"{text.replace(' ', '-')}\"" if text in verdicts else ""


def html_blocks(blocks: Iterable[Block]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        match block:
            case Heading(level, text):
                out.append(f"<h{level}>{inline_html(text)}</h{level}>")
            case Paragraph(text):
                out.append(f"<p>{inline_html(text)}</p>")
            case Bullets(items):
                out.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in items)
                           + "</ul>")
            case Code(text):
                out.append(f"<pre><code>{html.escape(text)}</code></pre>")
            case Table(headers, rows, numeric):
                head = "".join(f"<th>{inline_html(h)}</th>" for h in headers)
                body = "".join("<tr>" + "".join(
                    f"<td class=\"num\">{inline_html(c)}</td>" if i in numeric
                    else f"<td{verdict_class(c)}>{inline_html(c)}</td>"
                    for i, c in enumerate(row))
                    + "</tr>" for row in rows)
                out.append(f"<div class=\"table\"><table><thead><tr>{head}</tr></thead>"
                           f"<tbody>{body}</tbody></table></div>")
            case Figure(path, caption):
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                out.append(f"<figure><img alt=\"{html.escape(caption)}\" "
                           f"src=\"data:image/png;base64,{data}\"><figcaption>"
                           f"{html.escape(caption)}</figcaption></figure>")
            case Details(summary, inner):
                out.append(f"<details><summary>{html.escape(summary)}</summary>"
                           + "\n".join(html_blocks(inner)) + "</details>")
            case SideBySide(inner, figure):
                aside = "\n".join(html_blocks([figure])) if figure else ""
                out.append("<section class=\"side\"><div>" + "\n".join(html_blocks(inner))
                           + f"</div><div>{aside}</div></section>")
    return out


def to_html(blocks: Iterable[Block], title: str) -> str:
    head = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{HTML_STYLE}</style></head><body>")
    return "\n".join([head, *html_blocks(blocks), "</body></html>\n"])
