"""The Python API at the top (``pawlens.load``, ``pawlens.fit``): README's example runs as written, and ``import pawlens``
stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return code


def test_import_pawlens_is_light():
    code = ("import sys, pawlens; heavy = [m for m in ('torch', 'numpy', 'onnxruntime', 'openvino', 'pawlens.api') if m in sys.modules]; "
            "print(heavy); print(callable(pawlens.load), 'load' in dir(pawlens)); print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["[]", "True True"], r.stdout
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import pawlens

        pawlens.nothing  # noqa: B018


def test_readme_python_example_runs(tmp_path):
    from PIL import Image

    from pawlens.synthetic import synthetic_image

    for ci, cls in enumerate(("cat", "dog")):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(synthetic_image(ci, 64)).save(tmp_path / "photos" / cls / f"{i}.jpg")
    code = _readme_example()
    assert "pawlens.fit(" in code and ".export(" in code and ".explain(" in code
    code += "\nprint('RESULT', p.label, picture.shape, picture.dtype, cam.heatmap.shape)\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "gates passed: True" in r.stdout, r.stdout
    (line,) = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")]
    label, rest = line.split()[1], line.split(None, 2)[2]
    assert label in ("cat", "dog") and "uint8" in rest
    assert (tmp_path / "runs" / "train" / "api" / "best.pt").is_file()


def test_api_refuses_bad_calls(rt_tiny_onnx, tmp_path):
    import numpy as np

    import pawlens
    from pawlens.errors import InputError

    with pawlens.load(rt_tiny_onnx["fp32"]) as m:
        one = m.predict(np.zeros((40, 50, 3), np.uint8))
        two = m.predict([np.zeros((40, 50, 3), np.uint8)] * 2)
        assert one.label in m.class_names and len(two) == 2
        with pytest.raises(InputError, match="export starts from the PyTorch checkpoint"):
            m.export()
        with pytest.raises(InputError, match="expected an image path"):
            m.predict(42)
    with pytest.raises(InputError, match="unknown option.*arch"):
        pawlens.fit(data=str(tmp_path), arch="baseline")
