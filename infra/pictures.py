"""A small read-only web page for QC pictures, so links in Prefect artifacts open from the UI.

Browsers will not follow file:// links from an http:// page, and presigned S3 links expire in an
hour; `reel serve` runs this page and sets REEL_PUBLIC_URL so QC artifacts link here instead.
It serves only QC outputs (pictures, qc.json, the HTML report) of the configured store, never
masters, originals or anything outside the store; every key is validated like any store key.
"""

from __future__ import annotations

import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from catalog import layout
from infra.storage import ObjectNotFound, validate_key

PREFIX = "/pictures/"
SERVED = layout.QC_SERVED  # QC outputs only
TYPES = {"png": "image/png", "json": "application/json", "html": "text/html; charset=utf-8"}


def picture_url(public_url: str, key: str) -> str:
    return f"{public_url.rstrip('/')}{PREFIX}{quote(key)}"


def servable(key: str) -> bool:
    try:
        validate_key(key)
    except ValueError:
        return False
    return SERVED.fullmatch(key) is not None and ".." not in key.split("/")


def make_handler(open_store: Any) -> type[BaseHTTPRequestHandler]:
    class Pictures(BaseHTTPRequestHandler):
        server_version = "reel-pictures"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = urlsplit(self.path).path
            key = unquote(path[len(PREFIX):]) if path.startswith(PREFIX) else ""
            if not servable(key):
                return self._fail(HTTPStatus.NOT_FOUND, "not a QC output")
            try:
                data = open_store().get_bytes(key)
            except ObjectNotFound:
                return self._fail(HTTPStatus.NOT_FOUND, "no such QC output")
            except Exception as e:  # storage down: say so, do not crash the page
                return self._fail(HTTPStatus.BAD_GATEWAY, f"store: {type(e).__name__}")
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", TYPES[key.rsplit(".", 1)[1]])
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'")
            self.end_headers()
            self.wfile.write(data)

        def _fail(self, status: HTTPStatus, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the serve log is for runs
            pass

    return Pictures


def start_picture_server(open_store: Any, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Serve in a daemon thread; `server.server_address` has the bound port. `open_store()` gives a Store."""
    server = ThreadingHTTPServer((host, port), make_handler(open_store))
    threading.Thread(target=server.serve_forever, name="reel-pictures", daemon=True).start()
    return server
