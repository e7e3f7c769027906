"""Serving settings: the project settings plus the service's own knobs, read once per process.

One class, built by a cached function (tests build their own and hand it to ``create_app`` or
override the ``get_serving_settings`` dependency). Environment variables use the ``SCORELOOP_``
prefix like every other setting: ``SCORELOOP_ADMIN_TOKEN``, ``SCORELOOP_DEV_MODE``,
``SCORELOOP_RELOAD_INTERVAL_S``, ...
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr

from pipelines.errors import ScoreloopError
from pipelines.settings import Settings

#: Tokens that mean "nobody set this"; the service refuses to start with them outside dev mode.
PLACEHOLDER_TOKENS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "placeholder",
        "token",
        "secret",
        "admin",
        "password",
        "xxx",
        "todo",
        "replace-me",
        "dev",
        "test",
    }
)
MIN_TOKEN_LENGTH = 16


class ConfigError(ScoreloopError, RuntimeError):
    """The service is configured in a way it must not start with."""


class ServingSettings(Settings):
    """Where the snapshots are (inherited) and how the lookup service behaves."""

    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for /admin/* (SCORELOOP_ADMIN_TOKEN)."
    )
    dev_mode: bool = Field(default=False, description="Allow a missing admin token (local use).")
    reload_interval_s: float = Field(
        default=5.0, ge=0.0, description="Seconds between CURRENT polls; 0 disables following."
    )
    verify_checksum: bool = Field(default=True, description="Check sha256 of scores on load.")
    bench_routes: bool = Field(default=False, description="Mount /bench/hello (benchmarks only).")


@lru_cache(maxsize=1)
def get_serving_settings() -> ServingSettings:
    """Settings of this process (cached: environment read once, at first use)."""
    return ServingSettings()


def check_admin_token(settings: ServingSettings) -> None:
    """Refuse a missing or placeholder admin token unless dev mode is on."""
    if settings.dev_mode:
        return
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if token.strip().lower() in PLACEHOLDER_TOKENS or len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            "SCORELOOP_ADMIN_TOKEN is missing or a placeholder: set a random token of at least "
            f"{MIN_TOKEN_LENGTH} characters (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`), or run with --dev / SCORELOOP_DEV_MODE=1 "
            "for local use"
        )
