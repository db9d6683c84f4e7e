"""pawlens.document: the report blocks render to markdown and HTML; a stage's Document includes as a section."""

from __future__ import annotations

from pawlens.document import Document


def _doc() -> Document:
    d = Document("Parity")
    d.h2("Gates")
    d.p("all **passed** with `onnx`")
    d.note("near ties are not held against the artifact")
    d.table(["artifact", "max abs"], [["best.onnx", 1.5e-7], ["best.int8.onnx", float("nan")]])
    d.img("bench.png", "Latency")
    return d


def test_markdown_blocks():
    md = _doc().markdown()
    assert md.startswith("# Parity\n")
    for s in ("## Gates", "all **passed** with `onnx`", "> near ties are not held", "| artifact | max abs |", "| best.onnx | 1.5e-07 |",
              "| best.int8.onnx | n/a |", "![Latency](bench.png)"):
        assert s in md, s


def test_html_blocks_escape_and_inline():
    d = _doc()
    d.p("a <script> stays text")
    h = d.html()
    assert "<h2>Gates</h2>" in h and "<b>passed</b>" in h and "<code>onnx</code>" in h and "<blockquote>" in h
    assert "<td>1.5e-07</td>" in h and "<figure><img src='bench.png'" in h
    assert "&lt;script&gt;" in h and "<script>" not in h


def test_include_makes_a_section():
    report = Document("Demo")
    report.include(_doc(), heading="Export and parity")
    md = report.markdown()
    assert "## Export and parity" in md and "### Gates" in md and "# Parity" not in md
    assert md.index("## Export and parity") < md.index("### Gates") < md.index("| best.onnx |")


def test_one_table_model_renders_three_ways():
    """The same Table is a markdown table, an HTML table and fixed-width console lines (numbers right-aligned)."""
    from pawlens.document import Table

    t = Table.of(["model", "p50 ms"], [["lite0 `int8`", 2.5], ["resnet50", 61.25]])
    assert t.markdown()[:3] == ["| model | p50 ms |", "| --- | --- |", "| lite0 `int8` | 2.50 |"]
    assert "<td>lite0 <code>int8</code></td>" in t.html()
    assert t.console(rule=True) == ["model       p50 ms", "----------  ------", "lite0 int8    2.50", "resnet50     61.25"]
    assert t.console(notes=["", "fastest"])[1] == "lite0 int8    2.50  fastest"
    text = _doc().console()
    assert "Gates\n=====" in text and "best.onnx" in text and "passed with onnx" in text
