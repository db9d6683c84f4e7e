"""The formats table is the one source: the factory's auto, the loadable suffixes, export's names and the README agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pawlens.runtime import factory, formats

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_holds_the_generated_table():
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- formats table:")
    block = text[text.index("\n", start) + 1 : text.index("<!-- end of formats table -->")].strip()
    assert block == formats.markdown_table().strip()


def test_every_format_loads_through_the_factory_kinds():
    for f in formats.FORMATS:
        assert formats.suffix_kind("x" + f.suffix) == f.kind
        assert f.kind in factory.SUFFIXES
        assert set(f.backends + f.cuda_backends) <= set(formats.backends_for(f.kind))
        assert all(b in formats.BACKENDS for b in f.backends + f.cuda_backends)
    assert formats.suffix_kind("m.pth") == ".pt"
    assert formats.suffix_kind("m.plan") is None and formats.suffix_kind("m.trt") is None  # the factory refuses them
    assert "*.plan" not in formats.file_filter() and "*.onnx" in formats.file_filter()


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_auto_order_follows_the_table(precision):
    both = {"ort", "openvino"}
    assert formats.auto_choice(".onnx", precision, cuda=False, installed=both)[0] == "openvino"
    assert formats.auto_choice(".onnx", precision, cuda=False, installed={"ort"})[0] == "ort"
    assert formats.auto_choice(".onnx", precision, cuda=True, installed=both)[:2] == ("ort", {"device": "cuda"})
    assert formats.auto_choice(".onnx", precision, cuda=False, installed=set()) is None
    assert formats.auto_choice(".pt", "fp32", cuda=False, installed=())[1]["channels_last"] is False


def test_factory_plan_is_auto_choice(rt_tiny_onnx):
    installed = [b for b in formats.BACKENDS if factory.backend_installed(b)]
    for key in ("pt", "fp32", "int8"):
        path = rt_tiny_onnx[key]
        meta = factory.read_meta(path)
        plan = factory.plan_runner(path, device="cpu", meta=meta)
        want = formats.auto_choice(factory.file_kind(path), meta.precision, cuda=False, installed=installed)
        assert plan.backend == want[0], key
        assert {k: plan.kwargs[k] for k in want[1] if k in plan.kwargs} == {k: v for k, v in want[1].items() if k in plan.kwargs}


def test_app_keeps_onnx_runtime_and_says_why():
    backend, why = formats.app_choice(".onnx", "int8", cuda=False, installed={"ort", "openvino"})
    assert backend == "ort" and "OpenVINO" in why
    assert formats.app_choice(".pt", "fp32", cuda=False, installed={"ort"}) is None


def test_no_suffix_literal_outside_the_formats_table():
    """Every file suffix a stage names (.pt, .onnx, .engine, .int8.onnx, ...) comes from runtime/formats.py: a literal
    elsewhere is a second copy of the table that can drift from it."""
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pat = re.compile(r"^\*?(\.(int8|fp16))?\.(onnx|pt|pth|engine)(\.json)?$")
    found = []
    for stage in ("models", "train", "export", "runtime", "gui", "serve", "bench", "demo", "pawlens"):
        for p in sorted((root / stage).rglob("*.py")):
            if p.relative_to(root).as_posix() == "runtime/formats.py":
                continue
            for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and pat.match(node.value):
                    found.append(f"{p.relative_to(root)}:{node.lineno}: {node.value!r}")
    assert not found, "suffix literals outside runtime/formats.py (use its CHECKPOINT / ONNX / ENGINE / by_key(...).suffix):\n" + \
        "\n".join(found)


def test_the_table_names_each_backends_runner_and_each_formats_gate():
    from pawlens.runtime import formats
    from pawlens.runtime.base import Runner

    for key in formats.BACKENDS:
        cls = formats.runner_class(key)
        assert issubclass(cls, Runner) and cls.backend == key and cls.for_file is not Runner.for_file, key
    assert {f.key: (f.gate_backend, f.gate_device) for f in formats.FORMATS if f.exported} == {
        "onnx": ("ort", "cpu"), "fp16": ("ort", "cpu"), "int8": ("ort", "cpu"), "trt": ("trt", "cuda")}
    assert formats.sidecar_path("a/b.fp16.engine") == "a/b.fp16.engine.json"
    assert formats.sidecar_path("a/b.fp16.engine.failed") == "a/b.fp16.engine.failed.json"
