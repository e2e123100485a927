"""Workspace-level checks: every member is a versioned package on `shared`, wheels build, and one method
package installs and runs alone (with `shared` and `benchmarks`) in a fresh virtual environment."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["dome", "cocoa", "dr9k", "sage", "agentic-r", "matchtir", "arr", "rose", "mask", "huijin"]


def _project(path: Path) -> dict:
    return tomllib.loads((path / "pyproject.toml").read_text())["project"]


def test_all_ten_members_exist_with_own_version_and_shared_dependency():
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    assert members == ["shared", "benchmarks", "packages/*"]
    for name in PACKAGES:
        proj = _project(ROOT / "packages" / name)
        assert proj["name"] == name
        assert proj["version"].count(".") == 2
        names = [re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0] for dep in proj["dependencies"]]
        assert "shared" in names, f"{name} does not depend on shared"
        assert name in proj["scripts"], f"{name} has no console script named like the package"


def test_each_module_version_equals_its_pyproject_version():
    """results.json records `<module>.__version__`; a bump of pyproject.toml alone once left shared's behind."""
    import importlib

    dirs = {"shared": ROOT / "shared", "benchmarks": ROOT / "benchmarks"} | {n: ROOT / "packages" / n for n in PACKAGES}
    for name, path in dirs.items():
        module = importlib.import_module(name.replace("-", "_"))
        assert module.__version__ == _project(path)["version"], f"{name}: __init__ {module.__version__}"


def test_gpu_and_cpu_groups_conflict():
    uv = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]
    assert [{"group": "cpu"}, {"group": "gpu"}] in uv["conflicts"]
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    assert any(d.startswith("faiss-cpu") for d in groups["cpu"])
    assert any(d.startswith("vllm") for d in groups["gpu"])


@pytest.mark.slow
def test_one_package_installs_alone_from_wheels(tmp_path):
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    dist = tmp_path / "dist"
    for member in ["shared", "benchmarks", "packages/dome"]:
        subprocess.run([uv, "build", "--wheel", "-o", str(dist), str(ROOT / member)], check=True,
                       capture_output=True)
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-p", sys.executable, str(venv)], check=True, capture_output=True)
    py = venv / "bin" / "python"
    wheels = sorted(str(p) for p in dist.glob("*.whl"))
    subprocess.run([uv, "pip", "install", "-p", str(py), *wheels, "faiss-cpu"], check=True, capture_output=True)
    out = subprocess.run([str(venv / "bin" / "dome"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "usage: dome" in out.stdout
