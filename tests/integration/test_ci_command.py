"""The README's test command (`./test.sh`, which `.ci/run` calls) fails loudly: on a failing test,
on "no tests collected", and on a skipped integration test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_test_sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "test.sh"), *args], capture_output=True, text=True, timeout=600, cwd=REPO)


def test_ci_run_calls_exactly_the_test_command() -> None:
    text = (REPO / ".ci" / "run").read_text()
    assert "exec ./test.sh" in text
    readme = (REPO / "README.md").read_text()
    assert "./test.sh" in readme and "./setup.sh" in readme


def test_failing_test_makes_it_exit_non_zero(tmp_path: Path) -> None:
    (tmp_path / "test_canary.py").write_text("def test_canary():\n    assert 1 + 1 == 3\n")
    result = run_test_sh(str(tmp_path), "-p", "no:cacheprovider")
    assert result.returncode == 1, result.stdout[-2000:]
    assert "1 failed" in result.stdout


def test_no_tests_collected_makes_it_exit_non_zero() -> None:
    result = run_test_sh("tests/unit", "-k", "no_test_has_this_name_xyz", "-p", "no:cacheprovider")
    assert result.returncode == 5, result.stdout[-2000:]
    assert "no tests were collected" in result.stderr


@pytest.mark.parametrize("marker", ["integration"])
def test_skipped_integration_test_makes_it_exit_non_zero(tmp_path: Path, marker: str) -> None:
    (tmp_path / "conftest.py").write_text("pytest_plugins = []\nfrom tests.conftest import *  # noqa\n")
    (tmp_path / "test_skips.py").write_text(
        f"import pytest\n\n@pytest.mark.{marker}\ndef test_needs_broker():\n    pytest.skip('no broker')\n"
    )
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-m", "pytest", str(tmp_path), "-p", "no:cacheprovider",
         f"--rootdir={tmp_path}", "-c", str(REPO / "pyproject.toml")],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1, result.stdout[-2000:]
    assert "integration test(s) were skipped" in result.stdout
