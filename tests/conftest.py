"""Shared pytest options and fixtures: `--e2e` (below) and the language server `client`.

`--e2e full` runs the end-to-end learning tests (`@pytest.mark.slow`, tests/test_learning.py) at the
issue's full budgets (CartPole 100k steps on three seeds, 2048 for ten minutes); the default `ci`
runs the same tests at smaller budgets with thresholds set for them, so `python -m pytest` stays
within the suite's time limit and still fails when learning breaks.
"""

from __future__ import annotations

import pytest
import pytest_lsp
from lsp_client import SERVER, initialize
from pytest_lsp import LanguageClient


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
