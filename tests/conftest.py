"""Shared fixtures for the core tests: small, real components (no mocks)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def config(tmp_path):
    from vpa.config import load_config

    return load_config({"data_dir": tmp_path / "data", "embedder": "hashing", "chunk_size": 200, "chunk_overlap": 40}, environ={})
