"""The package as a user gets it: pyproject.toml agrees with the requirements files and the app's settings, and
(slow) an offline install into a fresh virtual environment runs from another folder, assets and all, with no
top-level `models` module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from explorer.cli import STREAMLIT_OPTIONS
from tests.browser import free_port

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

ROOT = Path(__file__).resolve().parent.parent
DIST = "token-reduction-explorer"


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirements(path: Path) -> list[str]:
    """The requirement lines of a requirements file, without comments and `-r` includes, spaces removed."""
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [re.sub(r"\s+", "", line) for line in lines if line and not line.startswith("-")]


def test_dependencies_are_requirements_txt():
    assert pyproject()["project"]["dependencies"] == requirements(ROOT / "requirements.txt")


def test_dev_extra_is_requirements_dev_txt():
    dev = requirements(ROOT / "requirements-dev.txt")
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()
    assert pyproject()["project"]["optional-dependencies"]["dev"] == dev


def test_ray_extra_is_requirements_ray_txt():
    assert "-r requirements-ray.txt" in (ROOT / "requirements-dev.txt").read_text()  # the tests run scans on Ray
    assert pyproject()["project"]["optional-dependencies"]["ray"] == requirements(ROOT / "requirements-ray.txt")


def test_app_flags_are_the_streamlit_config():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    flat = {
        f"{section}.{key}": json.dumps(value) if not isinstance(value, str) else value
        for section, options in config.items()
        for key, value in options.items()
    }
    assert STREAMLIT_OPTIONS == flat


# -- the installed package (slow: a venv and a pip install, then torch imported several times) --


def run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """The repository's package installed offline (no index, no dependencies: they come from the system's
    site-packages) into a venv; built from a copy, so the build leaves nothing in the checkout."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("explorer", "models", "assets"):
        shutil.copytree(ROOT / folder, source / folder, symlinks=True, ignore=skip)
    for file in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / file, source / file)
    venv = base / "venv"
    # Without a pip of its own: Python 3.11's ensurepip would also bring its old setuptools (no bdist_wheel), which
    # would hide the system's; the system's pip installs into the venv all the same.
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], cwd=base)
    python = venv / "bin" / "python"
    run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            str(source),
        ],
        cwd=base,
        timeout=600,
    )
    elsewhere = base / "elsewhere"  # neither the checkout nor the source copy
    elsewhere.mkdir()
    return {"python": python, "script": venv / "bin" / "token-explorer", "cwd": elsewhere}


@pytest.mark.slow
def test_installed_files_have_the_assets_and_no_top_level_models(installed):
    listing = run(
        [
            str(installed["python"]),
            "-c",
            f"import importlib.metadata as m; print('\\n'.join(str(f) for f in m.files({DIST!r})))",
        ],
        cwd=installed["cwd"],
    ).stdout.split()
    tops = {Path(name).parts[0] for name in listing}
    assert "models" not in tops and "models.py" not in tops, sorted(tops)
    assert not any(name.startswith(("tests/", "app.py", "benchmarks/")) for name in listing)
    for name in (
        "explorer/models/engine.py",
        "explorer/models/reducers/rlt.py",
        "explorer/ui/page.py",
        "explorer/ui/server.py",
        "explorer/assets/demo_model.safetensors",
        "explorer/assets/accuracy_budget.json",
        "explorer/assets/samples/CREDITS.md",
        "explorer/assets/samples/still_and_moving.mp4",
        "explorer/assets/samples/bigbuckbunny.mp4",
    ):
        assert name in listing, name
    where = run(
        [
            str(installed["python"]),
            "-c",
            "import explorer, importlib.util; print(explorer.__file__); print(importlib.util.find_spec('models'))",
        ],
        cwd=installed["cwd"],
    ).stdout.split()
    assert not Path(where[0]).is_relative_to(ROOT) and where[1] == "None", where


@pytest.mark.slow
def test_console_script_help_and_samples(installed):
    help_text = run([str(installed["script"]), "--help"], cwd=installed["cwd"]).stdout
    assert help_text.startswith("usage: token-explorer")
    for command in ("analyze", "bench", "train", "accuracy", "download", "reducers", "samples", "app"):
        assert command in help_text
    samples = run([str(installed["python"]), "-m", "explorer", "samples"], cwd=installed["cwd"]).stdout
    assert "sample:still_and_moving" in samples and str(ROOT) not in samples


@pytest.mark.slow
def test_console_script_analyzes_the_bundled_sample_with_the_demo_model(installed):
    out = installed["cwd"] / "trace"
    result = run(
        [
            str(installed["script"]),
            "analyze",
            "sample:still_and_moving",
            "--reducer",
            "rlt",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        cwd=installed["cwd"],
    )
    assert "kept" in result.stdout and "wrote" in result.stdout, result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert "demo" in json.dumps(summary).lower()  # the shipped weights were found inside the package
    assert (out / "trace.npz").stat().st_size > 0


@pytest.mark.slow
def test_console_script_serves_the_installed_page(installed):
    dry = run([str(installed["script"]), "app", "--dry-run"], cwd=installed["cwd"]).stdout
    served = next(part for part in dry.split() if part.endswith("server.py"))
    assert Path(served).is_file() and not Path(served).is_relative_to(ROOT)
    assert "--global.disableWidgetStateDuplicationWarning true" in dry

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    server = subprocess.Popen(
        [
            str(installed["script"]),
            "app",
            "--address",
            "127.0.0.1",
            "--port",
            str(port),
            "--",
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=installed["cwd"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an http_proxy
    try:
        deadline, healthy = time.monotonic() + 90, False
        while time.monotonic() < deadline and server.poll() is None and not healthy:
            try:
                with direct.open(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as response:
                    healthy = response.read().strip() == b"ok"
            except OSError:
                time.sleep(0.5)
        assert healthy, f"streamlit never answered on port {port} (exit status {server.poll()})"
        with direct.open(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200
    finally:
        server.terminate()
        try:
            server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate(timeout=10)


@pytest.mark.slow
def test_the_installed_page_runs_on_the_demo_model(installed):
    """The page as an installed user's `token-explorer app` runs it (AppTest: the default view, no browser)."""
    script = (
        "from importlib.util import find_spec\n"
        "from streamlit.testing.v1 import AppTest\n"
        "page = find_spec('explorer.ui.page').origin\n"
        "at = AppTest.from_file(page, default_timeout=180).run()\n"
        "assert not at.exception and not at.error, (at.exception, at.error)\n"
        "print(page, len(at.get('plotly_chart')))\n"
    )
    page, charts = run([str(installed["python"]), "-c", script], cwd=installed["cwd"]).stdout.split()
    assert not Path(page).is_relative_to(ROOT) and int(charts) > 0
