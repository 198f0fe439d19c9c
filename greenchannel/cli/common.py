"""What every command shares: the runtime, a session, reading a file, import errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from flask import Flask
from sqlalchemy.orm import Session

from core.settings import ConfigError
from facilities import registry
from facilities.registry import RegistryError
from greenchannel.runtime import Runtime, build_runtime, default_settings
from referral.rules import RulesError

# The instance folder (settings, the SQLite file, the road network) is the web app's, wherever
# the command runs: Flask finds it from the app's module.


APP_MODULE = "greenchannel.web.app"


def open_runtime() -> Runtime:
    """The composition root for this command (no web app is built for it)."""
    try:
        instance = Flask(APP_MODULE, instance_relative_config=True).instance_path
        return build_runtime(default_settings(instance))
    except (RulesError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None


def web_app(runtime: Runtime) -> Flask:
    from greenchannel.web.app import create_app

    try:
        return create_app(runtime=runtime)
    except (RulesError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def session_scope(runtime: Runtime) -> Iterator[Session]:
    with runtime.sessions() as session:
        yield session


def read_file(path: str) -> bytes:
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > registry.MAX_IMPORT_BYTES:
            raise click.ClickException(
                f"{path}: {size} bytes is over the "
                f"{registry.MAX_IMPORT_BYTES // (1024 * 1024)} MB limit"
            )
        return file.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"{path}: {exc.strerror}") from None


def import_failure(exc: RegistryError) -> click.ClickException:
    errors = getattr(exc, "errors", None)
    if errors:
        lines = [f"nothing imported: {len(errors)} error(s)"]
        lines += [f"  {error}" for error in errors]
        return click.ClickException("\n".join(lines))
    return click.ClickException(str(exc))
