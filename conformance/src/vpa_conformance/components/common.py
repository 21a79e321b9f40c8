"""What the component contracts share: example counts and the example counter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

#: Examples per clause in the ``ci`` profile.
COMPONENT_EXAMPLES = {"embedder": 10, "chunker": 40, "cache": 30, "auth": 15}


def _not_declared(request: pytest.FixtureRequest) -> None:
    request.node.user_properties.append(("vpa_status", "not declared"))


def _examples(request: pytest.FixtureRequest, count: int) -> None:
    request.node.user_properties.append(("vpa_examples", count))


class _Counter:
    """Counts hypothesis examples of one test function, for the report."""

    def __init__(self) -> None:
        self.examples = 0

    def tick(self) -> None:
        self.examples += 1


class _CountsExamples:
    @pytest.fixture
    def vpa_examples(self, request: pytest.FixtureRequest) -> Iterator[_Counter]:
        counter = _Counter()
        yield counter
        _examples(request, counter.examples)


# --- embedder --------------------------------------------------------------------------------
