"""Fixtures of both stacks' end-to-end tests: the stack the driver started, its Dagster API,
and "Materialize all" run once per module."""

from __future__ import annotations

import pytest

from tests.e2e.dagster_api import DagsterApi
from tests.e2e.stack import Stack
from tests.e2e.whole_graph import Materialisation, materialise_all


@pytest.fixture(scope="module")
def stack() -> Stack:
    found = Stack.from_environment()
    assert found is not None
    return found


@pytest.fixture(scope="module")
def api(stack: Stack) -> DagsterApi:
    return DagsterApi(stack.dagster_url)


@pytest.fixture(scope="module")
def materialised(stack: Stack, api: DagsterApi) -> Materialisation:
    return materialise_all(stack, api)
