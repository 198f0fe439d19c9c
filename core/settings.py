"""Configuration from the environment only (the public names: README), checked loudly at start."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable."""


def env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


def env_count(environ: Mapping[str, str], name: str, default: int) -> int:
    """A whole number from 0 to 10 (a count of hops), or the default when unset."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdecimal() or int(raw) > 10:
        raise ConfigError(f"{name}: expected a whole number from 0 to 10, got {raw[:20]!r}")
    return int(raw)


def env_positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdecimal() or int(raw) < 1:
        raise ConfigError(f"{name}: expected a whole number above 0, got {raw!r}")
    return int(raw)


def _secret_key(environ: Mapping[str, str], instance: Path) -> str:
    key = environ.get("SECRET_KEY", "")
    if key:
        return key
    # Development only: one key per instance folder, so that a restart keeps sessions and
    # several local processes agree. Production sets SECRET_KEY.
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


SMS_BACKENDS = ("console", "twilio", "recording", "aliyun", "tencent")
SMS_CN_SETTINGS = (
    "ALIYUN_ACCESS_KEY_ID",
    "ALIYUN_ACCESS_KEY_SECRET",
    "ALIYUN_SMS_SIGN_NAME",
    "ALIYUN_SMS_ENDPOINT",
    "TENCENT_SECRET_ID",
    "TENCENT_SECRET_KEY",
    "TENCENT_SMS_SDK_APP_ID",
    "TENCENT_SMS_SIGN_NAME",
    "TENCENT_SMS_ENDPOINT",
    "TENCENT_SMS_REGION",
    "SMS_TEMPLATES_FILE",
    "SMS_PUSH_TOKEN",
)


def load_config(instance_path: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    instance = Path(instance_path)
    backend = env.get("SMS_BACKEND", "console").strip() or "console"
    if backend not in SMS_BACKENDS:
        raise ConfigError(
            f"SMS_BACKEND: expected console, twilio, aliyun or tencent, got {backend!r}"
        )
    fallback = env.get("SMS_FALLBACK_BACKEND", "").strip()
    if fallback and (fallback not in SMS_BACKENDS or fallback == backend):
        raise ConfigError(
            f"SMS_FALLBACK_BACKEND: expected another of {', '.join(SMS_BACKENDS)}, got {fallback!r}"
        )
    voice = (env.get("VOICE_BACKEND", "off").strip() or "off").lower()
    if voice not in ("off", "twilio", "recording"):
        raise ConfigError(f"VOICE_BACKEND: expected twilio or off, got {voice!r}")
    public = env.get("PUBLIC_BASE_URL", "http://localhost:5000").rstrip("/")
    if not public.startswith(("http://", "https://")):
        raise ConfigError(f"PUBLIC_BASE_URL: expected an http(s) URL, got {public!r}")
    return {
        "DATABASE_URL": env.get("DATABASE_URL") or f"sqlite:///{instance / 'greenchannel.sqlite'}",
        "SECRET_KEY": _secret_key(env, instance),
        "PUBLIC_BASE_URL": public,
        "SMS_BACKEND": backend,
        "TWILIO_ACCOUNT_SID": env.get("TWILIO_ACCOUNT_SID", ""),
        "TWILIO_AUTH_TOKEN": env.get("TWILIO_AUTH_TOKEN", ""),
        "TWILIO_FROM": env.get("TWILIO_FROM", ""),
        "TWILIO_MESSAGING_SERVICE_SID": env.get("TWILIO_MESSAGING_SERVICE_SID", ""),
        "TWILIO_API_BASE": env.get("TWILIO_API_BASE", ""),
        # A phone call when a critical pre-alert stays unanswered (alerts/calls.py).
        "VOICE_BACKEND": voice,
        "TWILIO_VOICE_FROM": env.get("TWILIO_VOICE_FROM", ""),
        "GREENCHANNEL_RULES": env.get("GREENCHANNEL_RULES", ""),
        "GREENCHANNEL_ROADS": env.get("GREENCHANNEL_ROADS") or str(instance / "roads.npz"),
        "SESSION_COOKIE_SECURE": env_bool(
            env, "SESSION_COOKIE_SECURE", public.startswith("https://")
        ),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "MAX_CONTENT_LENGTH": 12 * 1024 * 1024,
        "WTF_CSRF_TIME_LIMIT": None,
        # A web session ends after this long without a request, and this long after login,
        # whatever the activity (shared ward computers); an API token after this many days.
        "SESSION_IDLE_MINUTES": env_positive_int(env, "GREENCHANNEL_SESSION_IDLE_MINUTES", 30),
        "SESSION_MAX_HOURS": env_positive_int(env, "GREENCHANNEL_SESSION_MAX_HOURS", 12),
        "TOKEN_LIFETIME_DAYS": env_positive_int(env, "GREENCHANNEL_TOKEN_DAYS", 90),
        # How many reverse proxies in front of the web processes set X-Forwarded-For/-Proto
        # (0: none; the client is the address the process sees). Only the last N hops are
        # believed, so a client cannot forge its own address past a trusted proxy.
        "TRUSTED_PROXIES": env_count(env, "GREENCHANNEL_TRUSTED_PROXIES", 0),
        # The domestic SMS providers (alerts.providers; checked when the transport is built).
        "SMS_FALLBACK_BACKEND": fallback,
        **{name: env.get(name, "").strip() for name in SMS_CN_SETTINGS},
    }
