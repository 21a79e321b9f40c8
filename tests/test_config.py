import pytest

from vpa.config import ENV_VARS, get_config, load_config, validate_config
from vpa.errors import ConfigError


def test_precedence_defaults_toml_environment_overrides(tmp_path):
    toml = tmp_path / "vpa.toml"
    toml.write_text('provider = "chroma"\ncollection = "from_toml"\nchunk_size = 500\n[providers.chroma]\npath = "x"\n')
    config = load_config({"collection": "explicit"}, environ={"VPA_VECTOR_DB_PROVIDER": "qdrant"}, config_file=toml)
    assert config.provider == "qdrant"  # environment beats the file
    assert config.collection == "explicit"  # overrides beat the environment
    assert config.chunk_size == 500
    assert config.provider_options("chroma") == {"path": "x"}
    assert config.provider_options("qdrant") == {}


def test_types_are_converted_and_errors_name_the_variable():
    config = load_config(environ={"VPA_VECTOR_DB_PORT": "6333", "VPA_AUTH_ENABLED": "yes", "VPA_CACHE_TTL_SECONDS": "1.5"})
    assert (config.port, config.auth_enabled, config.cache_ttl_seconds) == (6333, True, 1.5)
    with pytest.raises(ConfigError, match="VPA_VECTOR_DB_PORT"):
        load_config(environ={"VPA_VECTOR_DB_PORT": "http"})
    with pytest.raises(ConfigError, match="VPA_AUTH_ENABLED"):
        load_config(environ={"VPA_AUTH_ENABLED": "perhaps"})


def test_unknown_toml_key_is_an_error(tmp_path):
    toml = tmp_path / "vpa.toml"
    toml.write_text('provder = "chroma"\n')
    with pytest.raises(ConfigError, match="provder"):
        load_config(environ={}, config_file=toml)


def test_secrets_never_in_repr():
    config = load_config(environ={"VPA_VECTOR_DB_API_KEY": "sk-very-secret", "VPA_ENCRYPTION_KEY": "k2"})
    assert "sk-very-secret" not in repr(config)
    assert "sk-very-secret" not in str(config.redacted())
    assert config.redacted()["api_key"] == "<set>"


def test_production_refuses_insecure_settings():
    problems = validate_config(get_config("production"))
    assert any("VPA_AUTH_ENABLED" in p for p in problems)
    assert validate_config(load_config({"environment": "production", "auth_enabled": True}, environ={})) == []
    assert validate_config(load_config({"encrypt_at_rest": True}, environ={}))  # no key
    assert validate_config(load_config({"chunk_overlap": 2000}, environ={}))
    assert validate_config(load_config({"environment": "prod"}, environ={}))


def test_every_variable_maps_to_a_field():
    from vpa.config import VPAConfig

    fields = {f.name for f in VPAConfig.__attrs_attrs__}
    assert set(ENV_VARS.values()) <= fields


def test_unknown_provider_option_is_named():
    config = load_config({"providers": {"chroma": {"pth": "x"}}}, environ={})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) pth in \[providers.chroma\]; known: path"):
        config.provider_options("chroma", known={"path"})
    assert config.provider_options("qdrant", known={"url"}) == {}


def test_the_original_reference_variables_are_honoured():
    """Each variable of the original VPA reference means what it meant there (issue: settings
    accepted and silently ignored)."""
    import warnings

    from vpa.config import load_config

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for alias in ("VPA_ENABLE_AUTH", "VPA_REQUIRE_API_KEY"):
            assert load_config(environ={alias: "true"}).auth_enabled is True
        assert load_config(environ={"VPA_ENABLE_METRICS": "false"}).metrics_enabled is False
        assert load_config(environ={"VPA_VECTOR_DB_PROVIDER": "chromadb"}).provider == "chroma"
        assert load_config(environ={"VPA_DEBUG": "true"}).log_level == "DEBUG"
        assert load_config(environ={"VPA_TESTING": "true"}).environment == "testing"
        assert load_config(environ={"VPA_CACHE_SIZE_MB": "1.5"}).cache_size_mb == 1.5
        assert load_config(environ={"VPA_CONNECTION_POOL_SIZE": "8"}).connection_pool_size == 8
        assert load_config(environ={"VPA_ENCRYPT_IN_TRANSIT": "yes"}).encrypt_in_transit is True


def test_contradicting_aliases_are_refused():
    import pytest

    from vpa.config import load_config
    from vpa.errors import ConfigError

    with pytest.raises(ConfigError, match="VPA_ENABLE_AUTH.*contradicts VPA_AUTH_ENABLED"):
        load_config(environ={"VPA_ENABLE_AUTH": "true", "VPA_AUTH_ENABLED": "false"})


def test_unknown_variables_are_reported_with_the_closest_name():
    import pytest

    from vpa.config import ConfigWarning, load_config, validate_config

    with pytest.warns(ConfigWarning, match="unknown variable VPA_CAHCE_SIZE; did you mean VPA_CACHE_SIZE"):
        config = load_config(environ={"VPA_CAHCE_SIZE": "3"})
    assert config.cache_size == 1024
    production = load_config(environ={"VPA_ENVIRONMENT": "production", "VPA_AUTH_ENABLED": "true",
                                      "VPA_EMBEDER": "hashing"})
    assert any("VPA_EMBEDER; did you mean VPA_EMBEDDER" in p for p in validate_config(production))
    # a plugin's own variables are not unknown
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(environ={"VPA_QDRANT_URL": "http://127.0.0.1:1"})


def test_the_cache_can_be_bounded_by_megabytes():
    import numpy as np

    from vpa.caches.lru import LRUCache

    cache = LRUCache(10_000, 60, max_bytes=64 * 1024)
    for i in range(100):
        cache.set("ns", str(i), np.zeros(1024, dtype=np.float32))  # 4 KiB each
    assert 10 <= cache.stats().size <= 16
    cache.set("ns", "huge", np.zeros(1 << 20, dtype=np.float32))  # larger than the budget: skipped
    assert cache.get("ns", "huge") is None and cache.get("ns", "99") is not None


def test_vpa_config_flags_an_uninstalled_provider():
    from vpa.config import load_config, validate_config

    problems = validate_config(load_config(environ={"VPA_VECTOR_DB_PROVIDER": "pgvector"}))
    assert any("VPA_VECTOR_DB_PROVIDER: unknown store 'pgvector'" in p for p in problems)
    assert validate_config(load_config(environ={"VPA_VECTOR_DB_PROVIDER": "chromadb"})) == []


def test_a_pool_size_a_store_cannot_honour_is_said_not_ignored(tmp_path):
    import pytest

    from vpa.config import ConfigWarning, load_config
    from vpa.plugins import get_registry

    config = load_config({"connection_pool_size": 4, "data_dir": tmp_path}, environ={})
    with pytest.warns(ConfigWarning, match="VPA_CONNECTION_POOL_SIZE is set but the memory store has no connections"):
        get_registry().create("store", "memory", config)
