"""Shared pytest options and fixtures: `--e2e` (below) and the language server `client`.

`--e2e full` runs the end-to-end learning tests (`@pytest.mark.slow`, tests/test_learning.py) at the
issue's full budgets (CartPole 100k steps on three seeds, 2048 for ten minutes); the default `ci`
runs the same tests at smaller budgets with thresholds set for them, so `python -m pytest` stays
within the suite's time limit and still fails when learning breaks.

`ray_cluster` is one real local Ray cluster for the whole session (started at its first use, stopped
at the end; its tests skip when the `cluster` extra is not installed).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import pytest_lsp
from hypothesis import settings
from lsp_client import SERVER, initialize
from pytest_lsp import LanguageClient

# CI draws the same hypothesis examples every run (HYPOTHESIS_PROFILE=ci in .ci/run): a run that
# passed once passes again. One random draw of mdl.testing.strategies' designs once took the whole
# machine's memory in test_codegen (not reproduced since); a fixed draw cannot surprise CI that way.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])

# Ray on Linux swaps 127.0.0.1 for the machine's network address unless told not to; the tests' Ray
# traffic stays on the loopback address. Ray reads these when it is imported: set before any test can.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
os.environ.update(RAY_ENV)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--e2e", choices=("ci", "full"), default="ci",
                     help="budgets of the slow end-to-end learning tests (default: ci, the smaller ones)")


@pytest.fixture(scope="session")
def e2e(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--e2e")


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient):
    """A `python -m mdl.lsp` server, initialized with VS Code's client capabilities (tests/lsp_client.py)."""
    await initialize(lsp_client)
    yield
    await lsp_client.shutdown_session()



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """The address (127.0.0.1:PORT) of a local Ray head with 2 CPUs, as a user would start one."""
    pytest.importorskip("ray.tune", reason='the `cluster` extra (pip install -e ".[cluster]") is not installed')
    ray = shutil.which("ray")
    if ray is None:
        pytest.skip("the `ray` command is not on PATH")
    env = {**os.environ, **RAY_ENV}
    port = _free_port()
    temp = Path("/tmp") / f"ray-tests-{os.getpid()}"  # short: Ray's socket paths have a length limit
    start = [ray, "start", "--head", "--num-cpus", "2", "--node-ip-address", "127.0.0.1", "--port", str(port),
             "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", str(temp)]
    started = subprocess.run(start, env=env, capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        pytest.fail(f"ray start failed:\n{started.stdout}\n{started.stderr}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_grid_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/data/sweep/tiny_2048_grid.mdl trained without interruption, deterministic, with `--jobs 2`:
    what a continued or a Ray-run grid must equal."""
    from sweeps import TINY_2048, mdlc

    out = tmp_path_factory.mktemp("reference")
    code, _, stderr = mdlc("train", TINY_2048, "--out", out, "--jobs", "2", "--deterministic")
    assert code == 0, stderr
    return out / "tiny"
