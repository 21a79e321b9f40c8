"""Property-based fuzzing of the API from its own /openapi.json (schemathesis): valid and invalid
requests to every operation get a declared status with a body matching the declared schema —
and never a 5xx."""

from __future__ import annotations

import os

import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

#: Examples per operation and generation mode; CI-friendly by default.
MAX_EXAMPLES = int(os.environ.get("VPA_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _openapi_document() -> dict:
    """The application's OpenAPI document, built in-process (no I/O); the test checks that the
    server serves exactly this document."""
    from vpa.config import load_config
    from vpa.server.app import create_app

    config = load_config(
        {
            "embedder": "hashing",
            "auth_enabled": True,
            "providers": {"memory": {"persist": False}},
            "data_dir": "/nonexistent-vpa-fuzz",
        },
        environ={},
    )
    return create_app(config).openapi()


DOCUMENT = _openapi_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    with_security_parameters=False,  # the key is ours to send
    deterministic=True,
    database="none",
)


def test_the_served_document_is_the_fuzzed_one(server):
    import httpx

    assert httpx.get(f"{server.url}/openapi.json").json() == DOCUMENT


@schema.parametrize()
def test_no_server_errors_and_responses_match_the_schema(case, server, keys):
    # the fuzzing tenant's admin may call every operation, so requests reach the handlers
    case.call_and_validate(
        base_url=server.url, headers={"Authorization": f"Bearer {keys['fuzz_admin']}"}, checks=CHECKS
    )
