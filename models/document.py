"""The report blocks every stage hands over: heading, paragraph, note, bullets, table, figure, code.  One
:class:`Document` renders twice: markdown (what a terminal user reads: ``parity.md``, ``bench.md``, ``report.md``)
and HTML (the same content with the figures inline, for a person with a browser).

    doc = Document("Pawlens demo")
    doc.h2("Parity"); doc.p("..."); doc.table(["artifact", "max abs"], rows); doc.img("bench.png", "Latency")
    doc.include(parity_doc)   # a stage's own Document, as a section: its title becomes a heading
    doc.write(out_dir)        # report.md + report.html, atomically

Stages build a Document and write its markdown; the demo includes those Documents.  Nothing parses markdown back.
"""

from __future__ import annotations

import html
import os

from pawlens.models.console import atomic_write_text


class Document:
    def __init__(self, title: str):
        self.title = title
        self.blocks: list[tuple] = []

    def h2(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def h3(self, text: str) -> None:
        self.blocks.append(("h3", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("ul", list(items)))

    def table(self, headers: list[str], rows: list[list]) -> None:
        self.blocks.append(("table", list(headers), [[_cell(c) for c in r] for r in rows]))

    def note(self, text: str) -> None:
        """A remark set apart from the text (markdown: a quote)."""
        self.blocks.append(("note", text))

    def include(self, other: "Document", *, heading: str | None = None, level: str = "h2") -> None:
        """Another Document's blocks as a section of this one: ``heading`` (default: its title) at ``level``, its own
        ``h2`` headings one level down."""
        self.blocks.append((level, heading if heading is not None else other.title))
        for b in other.blocks:
            self.blocks.append(("h3", b[1]) if b[0] == "h2" and level == "h2" else b)

    def img(self, relpath: str, caption: str) -> None:
        self.blocks.append(("img", relpath, caption))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    # ------------------------------------------------------------------ rendering
    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            kind = b[0]
            if kind == "h2":
                out += [f"## {b[1]}", ""]
            elif kind == "h3":
                out += [f"### {b[1]}", ""]
            elif kind == "p":
                out += [b[1], ""]
            elif kind == "note":
                out += [f"> {b[1]}", ""]
            elif kind == "ul":
                out += [f"- {x}" for x in b[1]] + [""]
            elif kind == "table":
                headers, rows = b[1], b[2]
                out.append("| " + " | ".join(headers) + " |")
                out.append("|" + "|".join(" --- " for _ in headers) + "|")
                out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
                out.append("")
            elif kind == "img":
                out += [f"![{b[2]}]({b[1]})", ""]
            elif kind == "code":
                out += ["```", b[1], "```", ""]
        return "\n".join(out)

    def html(self) -> str:
        e = html.escape
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{e(self.title)}</title>",
            "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
            # wide tables and long paths scroll or wrap inside the page's column; the page itself never scrolls sideways
            "table{border-collapse:collapse;margin:1em 0;font-size:14px;display:block;max-width:100%;overflow-x:auto}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}p,li,td,figcaption{overflow-wrap:anywhere}"
            "pre{overflow-x:auto}"
            "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd}"
            "figure{margin:1em 0}figcaption{color:#555;font-size:13px}code,pre{background:#f6f6f6;padding:2px 4px}</style>",
            f"</head><body><h1>{e(self.title)}</h1>",
        ]
        parts += [_HTML[b[0]](*b[1:]) if b[0] not in ("h2", "h3") else f"<{b[0]}>{e(b[1])}</{b[0]}>" for b in self.blocks]
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, out_dir: str) -> tuple[str, str]:
        md = os.path.join(out_dir, "report.md")
        ht = os.path.join(out_dir, "report.html")
        atomic_write_text(md, self.markdown())
        atomic_write_text(ht, self.html())
        return md, ht


def _html_table(headers, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


#: How each block kind renders to HTML (headings aside).
_HTML = {
    "p": lambda text: f"<p>{_inline(text)}</p>",
    "note": lambda text: f"<blockquote>{_inline(text)}</blockquote>",
    "ul": lambda items: "<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in items) + "</ul>",
    "table": _html_table,
    "img": lambda src, cap: f"<figure><img src='{html.escape(src)}' alt='{html.escape(cap)}'><figcaption>{html.escape(cap)}</figcaption></figure>",
    "code": lambda text: f"<pre>{html.escape(text)}</pre>",
}


def _cell(c) -> str:
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
    import re

    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
    return t
