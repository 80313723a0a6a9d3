"""Markdown and HTML tables and inline text of the leaderboard page, shared by its sections."""

from __future__ import annotations

import html


def md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(headers), "|" + "|".join("---" for _ in headers) + "|", *map(line, rows)]


def html_table(
    headers: list[str],
    rows: list[list[str]],
    text_columns: set[int],
    name: str | None = None,
    scroll: bool = True,
) -> str:
    """An HTML table of ``rows`` under ``headers`` (``text_columns`` left-aligned and wrapped, the
    others numbers, an interval ``v [lo, hi]`` on a line under its value), of class ``name``.
    ``scroll``: in a box that scrolls sideways when the table is wider than the page; without it,
    the table's header stays at the top of the window while its rows scroll by (a sticky header
    sticks to its nearest scrolling box, which must be the page)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)

    def cell(i: int, text: str) -> str:
        if i in text_columns:
            return f'<td class="text">{html.escape(text)}</td>'
        value, bracket, interval = text.partition(" [")  # the interval on a line of its own
        below = f'<br><span class="ci">[{html.escape(interval)}</span>' if bracket else ""
        return f"<td>{html.escape(value)}{below}</td>"

    body = "".join("<tr>" + "".join(map(cell, range(len(c)), c)) + "</tr>" for c in rows)
    cls = f' class="{html.escape(name)}"' if name else ""
    table = f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>' if scroll else table


def inline(text: str) -> str:
    """Escape, then render markdown `code` spans."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
