"""The one settings object: read once at start-up from ``TRICKLE_*`` variables and CLI flags.

Nothing else in the service reads ``os.environ``. Every setting is listed in docs/settings.md
(a test keeps the two in step).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trickle import cards
from trickle.errors import ConfigError, ValidationFailed
from trickle.origins import normalize_origin

ENVIRONMENTS = ("development", "production", "test")
LOG_FORMATS = ("json", "text")
METRICS_TOKEN_MIN_CHARS = 32


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Service configuration. Safe defaults for local use; unsafe settings refused in production."""

    env: str = "development"
    host: str = "127.0.0.1"
    port: int = 8420
    workers: int = 1  # service processes `trickle serve` runs on one port (one database)
    data_dir: Path = Path("data")
    database_url: str = ""  # empty: a SQLite file in data_dir
    public_url: str = ""  # empty: http://{host}:{port}; the receipts' `iss`
    key_encryption_key: str = ""  # base64 32 bytes; empty: a 0600 file in data_dir (not production)
    receipt_ttl_s: int = 300
    key_reload_interval_s: int = 30
    jwks_max_age_s: int = 300  # the key set's Cache-Control max-age
    key_activation_leeway_s: int = 60  # a new key signs this much later than strictly needed
    log_level: str = "info"
    currency: str = "USD"
    asset_scale: int = 9
    fee_bps: int = 0
    default_rate_per_hour_minor: int = 600_000_000  # 0.60 USD at scale 9
    default_monthly_budget_minor: int = 5_000_000_000  # 5.00 USD at scale 9
    min_claim_minor: int = 1_000_000_000  # 1.00 USD at scale 9
    claim_hold_s: int = 3600
    claim_hold_verified_s: int = 600  # earnings from a site the payee verified: held shorter
    session_ttl_s: int = 30 * 86_400
    login_max_attempts: int = 10
    login_window_s: int = 300
    signup_max_per_address: int = 10  # sign-ups (attempts) from one client address per window
    signup_window_s: int = 3600
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (uvicorn's
    # forwarded_allow_ips, e.g. "127.0.0.1" behind nginx on the same host); empty: none, the
    # client address is the TCP peer's.
    forwarded_allow_ips: str = ""
    log_format: str = "json"  # "json": one JSON object a line (trickle.logs); "text": for people
    # Prometheus metrics (trickle.metrics): on a port of their own (0: none), and/or at /metrics
    # on the service's port for a bearer token (empty: /metrics answers 404).
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    metrics_token: str = dataclasses.field(default="", repr=False)
    metrics_dir: str = ""  # --workers N: prometheus-client's multiprocess folder; empty: data_dir
    allow_private_site_urls: bool = False
    site_check_max_concurrent: int = 8  # site checks fetching at once in one process
    site_check_max_concurrent_per_user: int = 2  # ... and for one user in one process
    stream_interval_ms: int = 2000
    stream_max_message_bytes: int = 4096
    stream_max_streams_per_connection: int = 64
    stream_max_connections_per_reader: int = 8
    stream_idle_timeout_s: int = 60
    stream_resume_grace_s: int = 30
    stream_token_check_processes: int = 1  # the private stream's token checks (0: on the loop)
    # Private-payment tokens (docs/tokens.md): one token's value (0.001 USD at scale 9: the
    # default rate of 0.60 USD/h spends one every 6 s), how long an epoch's tokens pay after it
    # stops issuing, and how many one issuance may buy
    token_value_minor: int = 1_000_000
    token_grace_s: int = 30 * 86_400
    token_batch_max: int = 32
    # Card top-ups through Stripe Checkout (docs/funding.md): off while the secret key is empty.
    stripe_secret_key: str = dataclasses.field(default="", repr=False)
    stripe_webhook_secret: str = dataclasses.field(default="", repr=False)
    stripe_api_base: str = ""  # empty: Stripe's own API (a stand-in's URL in tests)
    stripe_currency: str = ""  # empty: TRICKLE_CURRENCY, in lower case
    stripe_presets: str = "5.00,10.00,20.00"
    stripe_min_amount: str = "1.00"
    stripe_max_amount: str = "500.00"
    stripe_session_ttl_s: int = 3600

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'trickle.db').resolve()}"

    @property
    def resolved_metrics_dir(self) -> Path:
        """Where the worker processes of ``--workers N`` keep their metrics (wiped at start)."""
        return Path(self.metrics_dir) if self.metrics_dir else self.data_dir / "metrics"

    @property
    def issuer(self) -> str:
        """The receipts' ``iss``: an origin in normal form (docs/receipts.md §3.1), so that a
        verifier configured with the same URL in any spelling matches it."""
        if self.public_url:
            return normalize_origin(self.public_url)
        return normalize_origin(f"http://{self.host}:{self.port}")

    def validate(self) -> Settings:
        if self.public_url:
            try:
                normalize_origin(self.public_url)
            except ValidationFailed:
                raise ConfigError(
                    "TRICKLE_PUBLIC_URL must be an origin (scheme://host[:port], no path), "
                    f"got {self.public_url[:80]!r}"
                ) from None
        if self.env not in ENVIRONMENTS:
            raise ConfigError(f"TRICKLE_ENV must be one of {ENVIRONMENTS}, got {self.env!r}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"TRICKLE_PORT must be 1..65535, got {self.port}")
        if not 60 <= self.receipt_ttl_s <= 86_400:
            raise ConfigError(
                f"TRICKLE_RECEIPT_TTL_S must be 60..86400 seconds, got {self.receipt_ttl_s}"
            )
        if not 1 <= self.key_reload_interval_s <= 3600:
            raise ConfigError(
                f"TRICKLE_KEY_RELOAD_INTERVAL_S must be 1..3600, got {self.key_reload_interval_s}"
            )
        if not 1 <= self.jwks_max_age_s <= 86_400:
            raise ConfigError(f"TRICKLE_JWKS_MAX_AGE_S must be 1..86400, got {self.jwks_max_age_s}")
        if not 0 <= self.key_activation_leeway_s <= 3600:
            raise ConfigError(
                "TRICKLE_KEY_ACTIVATION_LEEWAY_S must be 0..3600, "
                f"got {self.key_activation_leeway_s}"
            )
        if self.claim_hold_verified_s < 0:
            raise ConfigError(
                f"TRICKLE_CLAIM_HOLD_VERIFIED_S must be 0 or more, got {self.claim_hold_verified_s}"
            )
        if not 0 <= self.asset_scale <= 18:
            raise ConfigError(f"TRICKLE_ASSET_SCALE must be 0..18, got {self.asset_scale}")
        if not 0 <= self.fee_bps <= 10_000:
            raise ConfigError(f"TRICKLE_FEE_BPS must be 0..10000, got {self.fee_bps}")
        if not 1 <= self.workers <= 64:
            raise ConfigError(f"TRICKLE_WORKERS must be 1..64, got {self.workers}")
        if not 10 <= self.stream_interval_ms <= 60_000:
            raise ConfigError(
                f"TRICKLE_STREAM_INTERVAL_MS must be 10..60000, got {self.stream_interval_ms}"
            )
        if not 512 <= self.stream_max_message_bytes <= 1_048_576:  # the transport's too
            raise ConfigError(
                "TRICKLE_STREAM_MAX_MESSAGE_BYTES must be 512..1048576, "
                f"got {self.stream_max_message_bytes}"
            )
        if not 0 <= self.stream_token_check_processes <= 8:
            raise ConfigError(
                "TRICKLE_STREAM_TOKEN_CHECK_PROCESSES must be 0..8, "
                f"got {self.stream_token_check_processes}"
            )
        if not 1 <= self.site_check_max_concurrent <= 256:
            raise ConfigError(
                "TRICKLE_SITE_CHECK_MAX_CONCURRENT must be 1..256, "
                f"got {self.site_check_max_concurrent}"
            )
        if not 1 <= self.site_check_max_concurrent_per_user <= self.site_check_max_concurrent:
            raise ConfigError(
                "TRICKLE_SITE_CHECK_MAX_CONCURRENT_PER_USER must be 1..the process-wide limit "
                f"({self.site_check_max_concurrent}), got {self.site_check_max_concurrent_per_user}"
            )
        if not 1 <= self.token_value_minor <= 10**15:
            raise ConfigError(
                f"TRICKLE_TOKEN_VALUE_MINOR must be 1..10^15, got {self.token_value_minor}"
            )
        if not 0 <= self.token_grace_s <= 366 * 86_400:
            raise ConfigError(
                f"TRICKLE_TOKEN_GRACE_S must be 0..31622400 (366 days), got {self.token_grace_s}"
            )
        if not 1 <= self.token_batch_max <= 256:
            raise ConfigError(f"TRICKLE_TOKEN_BATCH_MAX must be 1..256, got {self.token_batch_max}")
        self._validate_operations()
        if self.env == "production":
            if self.allow_private_site_urls:
                raise ConfigError("TRICKLE_ALLOW_PRIVATE_SITE_URLS is for development only")
            if not self.key_encryption_key:
                raise ConfigError(
                    "TRICKLE_KEY_ENCRYPTION_KEY is required in production "
                    "(the key file in the data folder is for development only)"
                )
            if not self.public_url.startswith("https://"):
                raise ConfigError("TRICKLE_PUBLIC_URL must be an https:// URL in production")
        cards.from_settings(self)  # refuses bad Stripe settings at start-up
        return self

    def _validate_operations(self) -> None:
        """Sign-up limits, logs, metrics."""
        if not 1 <= self.signup_max_per_address <= 1_000_000:
            raise ConfigError(
                "TRICKLE_SIGNUP_MAX_PER_ADDRESS must be 1..1000000, "
                f"got {self.signup_max_per_address}"
            )
        if not 1 <= self.signup_window_s <= 86_400:
            raise ConfigError(
                f"TRICKLE_SIGNUP_WINDOW_S must be 1..86400, got {self.signup_window_s}"
            )
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(
                f"TRICKLE_LOG_FORMAT must be one of {LOG_FORMATS}, got {self.log_format!r}"
            )
        if not 0 <= self.metrics_port < 65536 or self.metrics_port == self.port:
            raise ConfigError(
                "TRICKLE_METRICS_PORT must be 0 (none) or a port other than TRICKLE_PORT, "
                f"got {self.metrics_port}"
            )
        if self.metrics_token and len(self.metrics_token) < METRICS_TOKEN_MIN_CHARS:
            raise ConfigError(
                f"TRICKLE_METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_CHARS} characters "
                f"(got {len(self.metrics_token)}); make one with `openssl rand -hex 32`"
            )


_FIELD_TYPES: dict[str, type] = {
    field.name: {"int": int, "bool": bool, "Path": Path}.get(str(field.type), str)
    for field in dataclasses.fields(Settings)
}


def env_name(field: str) -> str:
    return f"TRICKLE_{field.upper()}"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the environment, then apply non-None overrides (CLI flags)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        raw = environ.get(env_name(field.name))
        if raw is None or raw == "":
            continue
        values[field.name] = _convert(field.name, raw)
    for name, value in overrides.items():
        if value is not None:
            values[name] = _convert(name, value) if isinstance(value, str) else value
    return Settings(**values).validate()


def _convert(name: str, raw: str) -> Any:
    kind = _FIELD_TYPES.get(name, str)
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{env_name(name)} must be true or false, got {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{env_name(name)} must be an integer, got {raw!r}") from None
    return kind(raw)


def to_environment(settings: Settings) -> dict[str, str]:
    """The ``TRICKLE_*`` variables that rebuild these settings in another process (workers)."""
    environ = {}
    for field in dataclasses.fields(Settings):
        value = getattr(settings, field.name)
        if isinstance(value, bool):
            value = "true" if value else "false"
        environ[env_name(field.name)] = str(value)
    return environ
