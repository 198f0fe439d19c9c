"""The pages' registration: Flask-Babel (zh by default), the page blueprints, template helpers."""

from __future__ import annotations

from typing import Any

from flask import Flask, g
from flask_babel import Babel

from greenchannel.web import (
    case_views,
    clock,
    labels,
    pages,
    pages_board,
    pages_cases,
    pages_history,
    pages_hospital,
    pages_reports,
    referral_form,
    referral_sheet,
)


def init_app(app: Flask) -> None:
    """Flask-Babel (zh by default), the page blueprints and the template helpers."""

    app.config.setdefault("BABEL_DEFAULT_LOCALE", "zh")
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "Asia/Shanghai")
    Babel(app, locale_selector=pages.select_locale)
    for blueprint in (pages.bp, pages_cases.bp, pages_hospital.bp, pages_board.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(pages_history.bp)  # the case history and its exports
    app.register_blueprint(pages_reports.bp)  # the monthly report (#19)
    app.jinja_env.globals.update(
        lang_url=pages.lang_url,
        language=pages.language,
        ROLE_NAMES=pages.ROLE_NAMES,
        server_now=clock.now,
        number=pages.number,
        field_label=referral_form.field_label,
        phone_link=case_views.phone_link,
        map_links=case_views.map_links,
        arrival_of=case_views.arrival,
        handover_sections=case_views.handover,
        referral_sheet=referral_sheet.page_sheet,
        **labels.template_globals(),
    )
    app.jinja_env.filters.update(local_time=pages.local_time, ago=pages.ago)

    @app.context_processor
    def page_defaults() -> dict[str, Any]:
        return {"user": g.get("user")}
