"""The report blocks every stage hands over: heading, paragraph, note, bullets, table, figure, code.  One
:class:`Document` renders three ways: markdown (what a terminal user reads: ``parity.md``, ``bench.md``,
``report.md``), HTML (the same content with the figures inline, for a person with a browser) and plain text
(fixed-width tables for a console).

    doc = Document("Pawlens demo")
    doc.h2("Parity"); doc.p("..."); doc.table(["artifact", "max abs"], rows); doc.img("bench.png", "Latency")
    doc.include(parity_doc)   # a stage's own Document, as a section: its title becomes a heading
    doc.write(out_dir)        # report.md + report.html, atomically

Each block is a frozen dataclass with its own ``markdown()``, ``html()`` and ``console()``; :class:`Table` is the one
table model of all three (and of the consoles' fixed-width tables: ``Table.of(...).console()``).  Stages build a Document
and write its markdown; the demo includes those Documents.  Nothing parses markdown back.  Inline text is still
markdown-lite: ``code`` spans and **bold** in a string are rendered by the HTML side.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, replace
from typing import Sequence

from pawlens.fs import atomic_write_text


def cell(c) -> str:
    """One table cell as text: floats to a few significant figures (NaN: ``n/a``), ``None`` empty."""
    if isinstance(c, float):
        if c != c:  # NaN
            return "n/a"
        if abs(c) >= 100:
            return f"{c:.0f}"
        if abs(c) >= 1:
            return f"{c:.2f}"
        return f"{c:.3g}"
    return "" if c is None else str(c)


def _inline(text: str) -> str:
    """Escape, then render `code` spans and **bold** from the markdown text."""
    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
    return t


def _plain(text: str) -> str:
    """The markdown-lite of a string without its marks, for a console."""
    return re.sub(r"\*\*([^*]+)\*\*", r"\1", re.sub(r"`([^`]+)`", r"\1", text))


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2  # 2: a section, 3: a subsection (the title is level 1)

    def markdown(self) -> list[str]:
        return [f"{'#' * self.level} {self.text}", ""]

    def html(self) -> str:
        return f"<h{self.level}>{html.escape(self.text)}</h{self.level}>"

    def console(self) -> list[str]:
        t = _plain(self.text)
        return [t, ("=" if self.level <= 2 else "-") * len(t), ""]


@dataclass(frozen=True)
class Paragraph:
    text: str

    def markdown(self) -> list[str]:
        return [self.text, ""]

    def html(self) -> str:
        return f"<p>{_inline(self.text)}</p>"

    def console(self) -> list[str]:
        return [_plain(self.text), ""]


@dataclass(frozen=True)
class Note:
    """A remark set apart from the text (markdown: a quote)."""

    text: str

    def markdown(self) -> list[str]:
        return [f"> {self.text}", ""]

    def html(self) -> str:
        return f"<blockquote>{_inline(self.text)}</blockquote>"

    def console(self) -> list[str]:
        return [f"  note: {_plain(self.text)}", ""]


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]

    def markdown(self) -> list[str]:
        return [f"- {x}" for x in self.items] + [""]

    def html(self) -> str:
        return "<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in self.items) + "</ul>"

    def console(self) -> list[str]:
        return [f"  - {_plain(x)}" for x in self.items] + [""]


@dataclass(frozen=True)
class Table:
    """Headers and rows of text cells (:func:`cell` made them text).  ``align``: one ``l`` or ``r`` per column for
    the fixed-width text (default: the first column left, the others right, as numbers read best)."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: str = ""

    @classmethod
    def of(cls, headers: Sequence, rows: Sequence[Sequence], align: str = "") -> "Table":
        return cls(tuple(str(h) for h in headers), tuple(tuple(cell(c) for c in r) for r in rows), align)

    def markdown(self) -> list[str]:
        out = ["| " + " | ".join(self.headers) + " |", "|" + "|".join(" --- " for _ in self.headers) + "|"]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in self.rows]
        return out + [""]

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def console(self, *, rule: bool = False, notes: Sequence[str] | None = None) -> list[str]:
        """Fixed-width lines: the header, a dashed rule under it (``rule``), then the rows; ``notes``: a text after
        each line (header first), outside the columns."""
        lines = [self.headers, *self.rows]
        n = len(self.headers)
        widths = [max(len(_plain(r[i])) if i < len(r) else 0 for r in lines) for i in range(n)]
        align = (self.align or "l" + "r" * (n - 1)).ljust(n, "r")

        def fmt(r: Sequence[str]) -> str:
            cells = [_plain(c) for c in r] + [""] * (n - len(r))
            return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align)).rstrip()

        out = [fmt(r) for r in lines]
        if notes is not None:
            out = [f"{line}  {note}".rstrip() for line, note in zip(out, list(notes) + [""] * (len(out) - len(notes)))]
        if rule:
            out.insert(1, "  ".join("-" * w for w in widths))
        return out


@dataclass(frozen=True)
class Figure:
    src: str  # relative to the document
    caption: str

    def markdown(self) -> list[str]:
        return [f"![{self.caption}]({self.src})", ""]

    def html(self) -> str:
        e = html.escape
        return f"<figure><img src='{e(self.src)}' alt='{e(self.caption)}'><figcaption>{e(self.caption)}</figcaption></figure>"

    def console(self) -> list[str]:
        return [f"[figure: {self.caption} ({self.src})]", ""]


@dataclass(frozen=True)
class Code:
    body: str

    def markdown(self) -> list[str]:
        return ["```", self.body, "```", ""]

    def html(self) -> str:
        return f"<pre>{html.escape(self.body)}</pre>"

    def console(self) -> list[str]:
        return [*("    " + line for line in self.body.splitlines()), ""]


Block = Heading | Paragraph | Note | Bullets | Table | Figure | Code

_STYLE = ("<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
          # wide tables and long paths scroll or wrap inside the page's column; the page itself never scrolls sideways
          "table{border-collapse:collapse;margin:1em 0;font-size:14px;display:block;max-width:100%;overflow-x:auto}"
          "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}p,li,td,figcaption{overflow-wrap:anywhere}"
          "pre{overflow-x:auto}"
          "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd}"
          "figure{margin:1em 0}figcaption{color:#555;font-size:13px}code,pre{background:#f6f6f6;padding:2px 4px}</style>")


class Document:
    def __init__(self, title: str):
        self.title = title
        self.blocks: list[Block] = []

    def add(self, block: Block) -> None:
        self.blocks.append(block)

    def h2(self, text: str) -> None:
        self.add(Heading(text, 2))

    def h3(self, text: str) -> None:
        self.add(Heading(text, 3))

    def p(self, text: str) -> None:
        self.add(Paragraph(text))

    def bullets(self, items: Sequence[str]) -> None:
        self.add(Bullets(tuple(items)))

    def table(self, headers: Sequence, rows: Sequence[Sequence]) -> None:
        self.add(Table.of(headers, rows))

    def note(self, text: str) -> None:
        """A remark set apart from the text (markdown: a quote)."""
        self.add(Note(text))

    def img(self, relpath: str, caption: str) -> None:
        self.add(Figure(relpath, caption))

    def code(self, text: str) -> None:
        self.add(Code(text))

    def include(self, other: "Document", *, heading: str | None = None, level: str = "h2") -> None:
        """Another Document's blocks as a section of this one: ``heading`` (default: its title) at ``level``, its own
        ``h2`` headings one level down."""
        depth = int(level[1:])
        self.add(Heading(heading if heading is not None else other.title, depth))
        for b in other.blocks:
            self.add(replace(b, level=3) if isinstance(b, Heading) and b.level == 2 and depth == 2 else b)

    def headings(self) -> list[str]:
        return [b.text for b in self.blocks if isinstance(b, Heading)]

    # ------------------------------------------------------------------ rendering
    def markdown(self) -> str:
        return "\n".join([f"# {self.title}", "", *(line for b in self.blocks for line in b.markdown())])

    def html(self) -> str:
        e = html.escape
        parts = ["<!doctype html><html><head><meta charset='utf-8'>", f"<title>{e(self.title)}</title>", _STYLE,
                 f"</head><body><h1>{e(self.title)}</h1>", *(b.html() for b in self.blocks), "</body></html>"]
        return "\n".join(parts)

    def console(self) -> str:
        lines = [self.title, "#" * len(self.title), ""]
        for b in self.blocks:
            lines += (b.console(rule=True) + [""]) if isinstance(b, Table) else b.console()
        return "\n".join(lines)

    def write(self, out_dir: str) -> tuple[str, str]:
        md = os.path.join(out_dir, "report.md")
        ht = os.path.join(out_dir, "report.html")
        atomic_write_text(md, self.markdown())
        atomic_write_text(ht, self.html())
        return md, ht
