"""Nothing read from the store, the bus or a request is deserialised as code: the project's code imports no
code-executing deserialiser and calls none. A regression guard for issue 13 (the detect worker once unpickled
its snapshots); what replaced each one is in docs/security.md, "No code from data"."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "pipeline", "models", "workers", "benchmarks")
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib", "jsonpickle"}
FORBIDDEN_CALLS = {"eval", "exec", "__import__"}


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


_WORDS = (*FORBIDDEN_MODULES, *FORBIDDEN_CALLS, "yaml", "torch", "allow_pickle", "Loader", "unsafe_load")


def _problems(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if not any(word in text for word in _WORDS):  # parse only what could hold a problem
        return []
    tree = ast.parse(text, str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where} imports {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
            found.append(f"{where} imports from {node.module}")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            if isinstance(func, ast.Name) and name in FORBIDDEN_CALLS:
                found.append(f"{where} calls {name}()")
            if name == "load" and owner in {"yaml", "torch"}:
                found.append(f"{where} calls {owner}.load() (use yaml.safe_load; no torch checkpoints)")
            if name in {"load", "loadtxt"} and owner in {"np", "numpy"} and any(
                    k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                    for k in node.keywords):
                found.append(f"{where} calls {owner}.{name}(allow_pickle=...)")
            if name == "unsafe_load" or (name == "load" and any(k.arg == "Loader" for k in node.keywords)):
                found.append(f"{where} calls a YAML loader that can build objects")
    return found


def test_the_sources_are_scanned() -> None:
    assert len(_sources()) > 100


@pytest.mark.parametrize("snippet", [
    "import pickle", "from pickle import loads", "import joblib", "eval('1')", "exec('x = 1')",
    "yaml.load(text)", "yaml.load(text, Loader=yaml.Loader)", "np.load(path, allow_pickle=True)", "torch.load(p)",
    "yaml.unsafe_load(text)",
])
def test_the_guard_catches_each_pattern(tmp_path: Path, snippet: str) -> None:
    path = tmp_path / "probe.py"
    path.write_text(snippet + "\n", encoding="utf-8")
    assert _problems(path), snippet


def test_no_code_executing_deserialiser_in_the_project() -> None:
    problems = [p for path in _sources() for p in _problems(path)]
    assert problems == [], "\n".join(problems)
