"""The store contract, split by concern: one module of clauses each (collections, records,
queries, filters, limits, bad input, the state machine, concurrency), combined in `StoreContract`.

A plugin's test subclasses `StoreContract` and provides a ``store`` fixture; it may subclass
`StoreStateMachine` to add rules of its own or pin a shrunk failure as a named regression test.
"""

from vpa_conformance.store.common import BASE_EXAMPLES, MAX_LOOP_STALL
from vpa_conformance.store.contract import StoreContract
from vpa_conformance.store.machine import StoreStateMachine

__all__ = ["BASE_EXAMPLES", "MAX_LOOP_STALL", "StoreContract", "StoreStateMachine"]
