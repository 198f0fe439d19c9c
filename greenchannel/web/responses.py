"""The HTTP side of the case documents: JSON answers and this app's documents cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from flask import Response, current_app

from referral.documents import DocumentCache, Written


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    """The JSON answer of documents (nothing is left for marshmallow to dump)."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        mimetype="application/json",
    )


def current_cache() -> DocumentCache:
    """This app's cache (one per app, so tests never see another test's cases)."""
    cache: DocumentCache = current_app.extensions["greenchannel.documents"]
    return cache


def list_response(entries: Sequence[Written], **extra: Any) -> Response:
    """``{"referrals": [...], **extra}`` of written documents, their JSON copied in as it is."""
    return json_response({"referrals": [orjson.Fragment(entry.body) for entry in entries], **extra})
