from __future__ import annotations

from pathlib import Path

import pytest

from trickle.errors import ConfigError
from trickle.settings import Settings, load_settings


def test_defaults_need_no_configuration() -> None:
    settings = load_settings({})
    assert settings.env == "development"
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.resolved_database_url.endswith("/data/trickle.db")
    assert settings.issuer == "http://127.0.0.1:8420"


def test_environment_then_flags() -> None:
    environ = {"TRICKLE_PORT": "9000", "TRICKLE_DATA_DIR": "/tmp/x", "TRICKLE_HOST": "0.0.0.0"}
    settings = load_settings(environ, port=9100, database_url=None)
    assert settings.port == 9100  # the flag wins
    assert settings.data_dir == Path("/tmp/x")
    assert settings.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TRICKLE_PORT": "eighty"}, "must be an integer"),
        ({"TRICKLE_PORT": "70000"}, "1..65535"),
        ({"TRICKLE_ENV": "staging"}, "TRICKLE_ENV"),
        ({"TRICKLE_RECEIPT_TTL_S": "5"}, "60..86400"),
        ({"TRICKLE_STREAM_MAX_MESSAGE_BYTES": "100"}, "512..1048576"),
        ({"TRICKLE_SITE_CHECK_MAX_CONCURRENT": "0"}, "1..256"),
        ({"TRICKLE_KEY_RELOAD_INTERVAL_S": "0"}, "TRICKLE_KEY_RELOAD_INTERVAL_S must be 1..3600"),
        ({"TRICKLE_JWKS_MAX_AGE_S": "0"}, "TRICKLE_JWKS_MAX_AGE_S must be 1..86400"),
        ({"TRICKLE_KEY_ACTIVATION_LEEWAY_S": "-1"}, "LEEWAY_S must be 0..3600"),
        (
            {
                "TRICKLE_SITE_CHECK_MAX_CONCURRENT": "4",
                "TRICKLE_SITE_CHECK_MAX_CONCURRENT_PER_USER": "5",
            },
            r"1\.\.the process-wide limit \(4\)",
        ),
        ({"TRICKLE_ENV": "production", "TRICKLE_PUBLIC_URL": "https://t.example"}, "required"),
        (
            {"TRICKLE_ENV": "production", "TRICKLE_KEY_ENCRYPTION_KEY": "a" * 44},
            "https://",
        ),
    ],
)
def test_bad_or_unsafe_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ)


def test_public_url_is_the_issuer_without_trailing_slash() -> None:
    assert Settings(public_url="https://t.example/").issuer == "https://t.example"


def test_the_issuer_is_the_public_url_in_the_normal_form_of_an_origin() -> None:
    # receipts.md §3.1: verifiers normalise the issuer they are configured with; the service
    # signs the same normal form, whatever spelling the operator wrote.
    assert Settings(public_url="HTTPS://T.Example:443/").issuer == "https://t.example"
    assert Settings(public_url="http://t.example:8080").issuer == "http://t.example:8080"


@pytest.mark.parametrize(
    "public_url", ["https://t.example/prefix", "ftp://t.example", "https://u:p@t.example", "x"]
)
def test_a_public_url_that_is_not_an_origin_is_refused(public_url: str) -> None:
    with pytest.raises(ConfigError, match="TRICKLE_PUBLIC_URL must be an origin"):
        Settings(public_url=public_url).validate()
