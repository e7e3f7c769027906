"""Serving settings: the project settings plus the service's own knobs, read once per process.

One class, built by a cached function (tests build their own and hand it to ``create_app`` or
override the ``get_serving_settings`` dependency). Environment variables use the ``SCORELOOP_``
prefix like every other setting: ``SCORELOOP_ADMIN_TOKEN``, ``SCORELOOP_DEV_MODE``,
``SCORELOOP_RELOAD_INTERVAL_S``, ...
"""

from __future__ import annotations

import ipaddress
import itertools
import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from pydantic import Field, SecretStr

from pipelines.errors import ScoreloopError
from pipelines.settings import Settings

#: Least estimated entropy of an admin token, in bits (``secrets.token_urlsafe(16)`` has ~90).
MIN_TOKEN_BITS = 80
MAKE_TOKEN = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def _shannon_bits(symbols: Sequence[object]) -> float:
    """Total Shannon entropy of a sequence, from its own symbol frequencies."""
    n = len(symbols)
    counts = Counter(symbols)
    return -sum(c * math.log2(c / n) for c in counts.values())


def token_entropy_bits(token: str) -> float:
    """A conservative estimate of a token's entropy in bits.

    The smaller of the entropy of its characters (``xxxx...`` has none) and of the steps between
    neighbouring characters (``abcdef...``, ``0123...`` step by one; plus the bits to pick the
    first character), each from the token's own frequencies. Random tokens score close to
    ``len * log2(alphabet)``; repeated, sequential or word-like ones score low.
    """
    if not token:
        return 0.0
    steps = [ord(b) - ord(a) for a, b in itertools.pairwise(token)]
    by_steps = _shannon_bits(steps) + math.log2(len(set(token)))
    return max(0.0, min(_shannon_bits(token), by_steps))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts local connections."""
    if host.strip().lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body accepted (413 beyond); 1000 ids fit in a few KB.",
    )


@lru_cache(maxsize=1)
def get_serving_settings() -> ServingSettings:
    """Settings of this process (cached: environment read once, at first use)."""
    return ServingSettings()


def check_admin_token(settings: ServingSettings) -> None:
    """Refuse a missing or weak admin token (estimated by entropy) unless dev mode is on."""
    if settings.dev_mode:
        return
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not token.strip():
        raise ConfigError(
            "SCORELOOP_ADMIN_TOKEN is missing or a placeholder: set a random token, made with "
            f"`{MAKE_TOKEN}`, or run with --dev / SCORELOOP_DEV_MODE=1 for local use"
        )
    bits = token_entropy_bits(token)
    if bits < MIN_TOKEN_BITS:
        # The message gives the estimate, never the token (it ends up in logs).
        raise ConfigError(
            f"SCORELOOP_ADMIN_TOKEN is too weak: about {bits:.0f} bits of entropy, at least "
            f"{MIN_TOKEN_BITS} needed (repeated, sequential or word-like tokens are guessable). "
            f"Make a random one with `{MAKE_TOKEN}`"
        )


def check_dev_host(settings: ServingSettings, host: str) -> None:
    """Refuse dev mode on an address other machines can reach (it skips the token checks)."""
    if settings.dev_mode and not is_loopback(host):
        raise ConfigError(
            f"dev mode (--dev / SCORELOOP_DEV_MODE=1) is refused on non-loopback host {host!r}: "
            "it lets /admin/reload run without a strong token. Bind 127.0.0.1 for local use, or "
            f"drop dev mode and set SCORELOOP_ADMIN_TOKEN (make one with `{MAKE_TOKEN}`)"
        )
