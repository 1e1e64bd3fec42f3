"""Shared pytest options.

`--e2e full` runs the end-to-end learning tests (`@pytest.mark.slow`, tests/test_learning.py) at the
issue's full budgets (CartPole 100k steps on three seeds, 2048 for ten minutes); the default `ci`
runs the same tests at smaller budgets with thresholds set for them, so `python -m pytest` stays
within the suite's time limit and still fails when learning breaks.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--e2e", choices=("ci", "full"), default="ci",
                     help="budgets of the slow end-to-end learning tests (default: ci, the smaller ones)")


@pytest.fixture(scope="session")
def e2e(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--e2e")
