"""The store contract's old import path: it lives in `vpa_conformance.store`, one module per
concern (collections, records, queries, filters, limits, bad input, state machine, concurrency)."""

from vpa_conformance.store import BASE_EXAMPLES, MAX_LOOP_STALL, StoreContract, StoreStateMachine

__all__ = ["BASE_EXAMPLES", "MAX_LOOP_STALL", "StoreContract", "StoreStateMachine"]
