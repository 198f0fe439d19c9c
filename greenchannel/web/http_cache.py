"""What the pages poll, cheaply: ETags and ``304 Not Modified``, compression, versioned assets.

A coordinator's board asks for its fragment every few seconds all shift, and a phone on a case
page does the same over a paid mobile connection. Nearly every answer is the one before, so:

- **The polled fragments** (``/board/live``, ``/cases/<id>/live``, ``/clinic/live``,
  ``/hospital/live``) are tagged with a key made of what they show (each case's
  ``revision``, which the database's triggers move on every write, the registry and closure
  rows, the user, role and language, the templates) and read in a few light statements; when
  the browser's ``If-None-Match`` names that key, the answer is a bare 304 and nothing is
  rendered (:func:`not_modified`). Words that follow the clock without the browser's help
  ("past the target", "reported 2 hours ago", "arrival if she leaves now") put the minute
  in the key (:func:`minute`): such a fragment is rendered again at most once a minute.
- **The JSON lists** the map polls are tagged with a hash of their body (:func:`_json_etag`):
  the database is still read (the case documents are cached per process anyway), but a
  body the browser already holds is not sent again.
- Every tag is weak (``W/"…"``): it names the content, not the bytes, so it holds whether the
  body travels compressed or not, and flask-compress leaves a weak tag as it is.
- Private answers stay ``Cache-Control: no-store`` (a shared ward computer keeps no copy);
  ``live.js`` keeps the last tag in memory and asks with ``If-None-Match`` itself.
- **Compression** (flask-compress, brotli or gzip) for HTML, JSON, JavaScript, CSS and SVG
  above 500 bytes.
- **Static files** get their content's hash in the URL (``?v=…``, added to every
  ``url_for('static', …)``) and, asked with that version, ``public, max-age=31536000,
  immutable``: a browser fetches each version once.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, request
from flask_compress import Compress
from werkzeug.security import safe_join

from greenchannel.web import clock

IMMUTABLE = "public, max-age=31536000, immutable"
BUILD = "greenchannel.http_cache.build"
_STATIC_VERSIONS = "greenchannel.http_cache.static"

COMPRESS_MIMETYPES = [
    "text/html",
    "text/css",
    "text/javascript",
    "application/javascript",
    "application/json",
    "image/svg+xml",
]

# A 304 carries no body: the headers that describe one (and the page's security policy, which
# applies to a document, not to an empty answer) are left off, so an unchanged poll costs a
# few hundred bytes. ETag, Cache-Control, Vary, Date and Set-Cookie stay (RFC 9110 §15.4.5).
_NOT_FOR_304 = (
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Permissions-Policy",
    "Content-Type",
    "Content-Length",
)


def init_app(app: Flask) -> None:
    """Compression, the JSON lists' ETags, the short 304s and the static versions.

    Call it before the app's own ``after_request`` hooks that set headers (the security
    headers): hooks run in reverse order, so the security headers are set first, then this
    module turns an unchanged answer into a 304 on the uncompressed body, then flask-compress
    compresses what is left.
    """
    app.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    app.config.setdefault("COMPRESS_ALGORITHM_STREAMING", ["br", "deflate"])
    app.config.setdefault("COMPRESS_MIMETYPES", COMPRESS_MIMETYPES)
    app.config.setdefault("COMPRESS_MIN_SIZE", 500)
    Compress(app)
    app.extensions[BUILD] = _build_id(app)
    app.extensions[_STATIC_VERSIONS] = {}
    app.url_defaults(_version_static)
    app.after_request(_after_request)


# ------------------------------------------------------------------------------------ ETags


def key(*parts: Any) -> str:
    """A tag for what a fragment shows: ``parts`` (plain values, rows, tuples) and the build."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(current_app.extensions[BUILD].encode())
    digest.update(repr(parts).encode())
    return digest.hexdigest()


def minute() -> int:
    """The current minute (the app's clock): in a key, the fragment is rendered again at most
    once a minute for the words that follow the clock."""
    return int(clock.now().timestamp() // 60)


def not_modified(tag: str) -> Response | None:
    """A bare 304 when the request's ``If-None-Match`` names ``tag`` (weak comparison)."""
    if request.if_none_match and request.if_none_match.contains_weak(tag):
        response = Response(status=304)
        response.set_etag(tag, weak=True)
        return response
    return None


def tagged(body: str, tag: str) -> Response:
    """A rendered fragment with its tag."""
    response = Response(body, mimetype="text/html")
    response.set_etag(tag, weak=True)
    return response


def _json_etag(response: Response) -> Response:
    """A JSON answer to a GET: tagged with its body's hash; a 304 if the caller holds it."""
    digest = hashlib.blake2b(response.get_data(), digest_size=12).hexdigest()
    response.set_etag(digest, weak=True)
    if request.if_none_match and request.if_none_match.contains_weak(digest):
        unchanged = Response(status=304)
        unchanged.headers.extend(
            (name, value)
            for name, value in response.headers.items()
            if name not in _NOT_FOR_304 and name != "Content-Encoding"
        )
        return unchanged
    return response


def _after_request(response: Response) -> Response:
    if (
        request.method == "GET"
        and response.status_code == 200
        and request.path.startswith("/api/")
        and response.mimetype == "application/json"
        and not response.is_streamed
        and "ETag" not in response.headers
    ):
        response = _json_etag(response)
    if response.status_code == 304:
        for name in _NOT_FOR_304:
            response.headers.pop(name, None)
    elif (
        request.endpoint == "static"
        and response.status_code in (200, 206)
        and request.args.get("v")
        and request.args["v"] == static_version((request.view_args or {}).get("filename", ""))
    ):
        response.headers["Cache-Control"] = IMMUTABLE
    return response


def _build_id(app: Flask) -> str:
    """The templates and translations this process renders with: a new release (new words, a
    new layout) never answers 304 to a fragment an old one wrote."""
    root = Path(app.root_path)
    digest = hashlib.blake2b(digest_size=8)
    files: Iterable[Path] = sorted(
        [*(root / "templates").rglob("*.html"), *(root / "translations").rglob("*.mo")]
    )
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------ static files


def static_version(filename: str) -> str:
    """The first 12 hex digits of the file's SHA-256 ('' when there is no such file); read
    again when the file's modification time or size changes."""
    app = current_app
    folder = app.static_folder
    if not folder or not filename:
        return ""
    path = safe_join(folder, filename)
    if path is None:
        return ""
    try:
        found = os.stat(path)
    except OSError:
        return ""
    if not stat.S_ISREG(found.st_mode):
        return ""
    versions: dict[str, tuple[int, int, str]] = app.extensions[_STATIC_VERSIONS]
    known = versions.get(filename)
    if known is not None and known[:2] == (found.st_mtime_ns, found.st_size):
        return known[2]
    with open(path, "rb") as file:
        version = hashlib.sha256(file.read()).hexdigest()[:12]
    versions[filename] = (found.st_mtime_ns, found.st_size, version)
    return version


def _version_static(endpoint: str, values: dict[str, Any]) -> None:
    if endpoint == "static" and "v" not in values and values.get("filename"):
        version = static_version(str(values["filename"]))
        if version:
            values["v"] = version
