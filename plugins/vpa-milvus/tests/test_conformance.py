"""The VPA conformance suite against Milvus: Milvus Lite, and a real Milvus server.

The server is the session's `milvus_server` (conftest.py): a Milvus 2.3.5 standalone started for
the run, or the Milvus that ``VPA_MILVUS_URI`` names.

On a server every example of a clause creates, indexes, loads and drops a real collection (about
2 s on 2 cores, most of it the load), so the whole suite at the ``ci`` profile's counts took 22
minutes. The server class therefore runs every clause — nothing is left out — with the
``server`` share of each hypothesis clause's examples (`SERVER_SHARE` of the active profile's
count, at least one); Milvus Lite runs the full counts of the profile. The filter translation is
checked exhaustively on the server too, by test_milvus_filters.py (every operator with every value
of a pool, generated trees, against the reference evaluator), so the clauses that draw one filter
operator or metadata type per example (12 and 7 of them) run one example each here.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis.stateful import run_state_machine_as_test
from vpa_conformance import StoreContract
from vpa_conformance.profiles import clause_settings
from vpa_conformance.store.common import BASE_EXAMPLES
from vpa_milvus.store import MilvusStore

#: The server run's share of each clause's examples (``VPA_MILVUS_SERVER_SHARE`` overrides it,
#: 1 runs the profile's full counts against the server).
SERVER_SHARE = float(os.environ.get("VPA_MILVUS_SERVER_SHARE", "0.15"))
SERVER_MIN_EXAMPLES = 1
if not 0 < SERVER_SHARE <= 1:
    raise ValueError(f"VPA_MILVUS_SERVER_SHARE must be in (0, 1], got {SERVER_SHARE}")


def server_examples(count: int) -> int:
    return min(count, max(SERVER_MIN_EXAMPLES, round(count * SERVER_SHARE)))


def with_server_share(test: Any) -> Any:
    """A new hypothesis test of the same clause body and strategies, with `server_examples` of
    its example count (the conformance package's test is left as it is, for the Lite class)."""
    handle = test.hypothesis
    current = test._hypothesis_internal_use_settings
    fresh = given(**handle._given_kwargs)(handle.inner_test)
    fresh = settings(current, max_examples=server_examples(current.max_examples))(fresh)
    if hasattr(test, "pytestmark"):
        fresh.pytestmark = list(test.pytestmark)
    return fresh


class TestMilvusLiteConformance(StoreContract):
    """Milvus Lite on a fresh .db file, served by the store's helper process."""

    @pytest.fixture
    def db_path(self, tmp_path):
        return str(tmp_path / "milvus" / "vpa.db")

    @pytest.fixture
    def store(self, db_path):
        return MilvusStore(db_path)

    @pytest.fixture
    def store_factory(self, db_path):
        """Another instance over the same file (after the first is closed)."""
        return lambda: MilvusStore(db_path)


class TestMilvusServerConformance(StoreContract):
    """A real Milvus server (FLAT index, Strong consistency), each clause at the server share."""

    @pytest.fixture
    def store(self, milvus_server):
        return milvus_server.store()

    @pytest.fixture
    def store_factory(self, milvus_server):
        return milvus_server.store

    def test_state_machine(self, vpa_store) -> None:
        """The suite's stateful clause (`StoreStateMachine`, the same steps per run), with the
        server share of its runs."""
        base = clause_settings(BASE_EXAMPLES["state_machine"], stateful=True)
        run_state_machine_as_test(
            self.state_machine.bind(vpa_store),
            settings=settings(base, max_examples=server_examples(base.max_examples)),
        )

    test_state_machine.__doc__ = f"{StoreContract.test_state_machine.__doc__}\n\n{test_state_machine.__doc__}"


for _name in dir(StoreContract):
    _test = getattr(StoreContract, _name)
    if _name.startswith("test_") and hasattr(_test, "hypothesis"):
        setattr(TestMilvusServerConformance, _name, with_server_share(_test))
