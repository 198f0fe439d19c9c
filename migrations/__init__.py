"""Alembic migrations for every package's models, and helpers to run them from code."""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config

MODEL_MODULES = ("facilities.models", "alerts.models", "referral.models")


def import_models() -> None:
    """Import every models module that exists, so the metadata is complete."""
    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
