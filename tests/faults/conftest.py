"""The fault campaign's switch: ``--faults-long`` (when pytest is pointed at tests/faults) or
``CONTINUUM_FAULTS=long`` selects the long form; see tests/faults/budget.py for the sizes."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    # Only seen when tests/faults is on the command line (a conftest below the rootdir's
    # testpaths is not loaded before option parsing otherwise); CONTINUUM_FAULTS=long always works.
    parser.addoption("--faults-long", action="store_true", default=False,
                     help="run the long form of the fault campaign (same as CONTINUUM_FAULTS=long)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--faults-long", default=False):
        # Before any test module of this folder is imported: tests/faults/budget.py reads it.
        os.environ["CONTINUUM_FAULTS"] = "long"


def pytest_report_header(config: pytest.Config) -> str:
    from tests.faults import budget

    return f"fault campaign: {budget.MODE} form (CONTINUUM_FAULTS=long or --faults-long for the long one)"
