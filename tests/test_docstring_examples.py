"""The runnable examples in the docstrings run, and say what they show (doctest, module by module)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import engines
import realtime


def _modules() -> list[str]:
    names = []
    for package in (engines, realtime):
        names.append(package.__name__)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return sorted(names)


OPTIONAL = {"realtime.outputs.rtsp_serve": "gi"}  # runs under /usr/bin/python3 with GStreamer's bindings, not here


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name], reason=f"{name} needs {OPTIONAL[name]}")
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see the output above)"
