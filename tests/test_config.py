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
