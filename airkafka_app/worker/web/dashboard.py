"""The cluster dashboard at ``/``: one static page and its script, which read the cluster views
and, with the bearer token typed into the page, cancel and replay tasks. No build step: the
files under ``static/`` are served as they are."""

from __future__ import annotations

from importlib.resources import files

from faust.web import Request, Response, View

from airkafka_app.worker.application import App

_STATIC = files("airkafka_app.worker.web") / "static"
# The page runs only its own script and shows records' text as text: a hostile field cannot script it.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
_FILES = {
    "index.html": "text/html",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}


def _serve(web: View, name: str) -> Response:
    return web.text((_STATIC / name).read_text(), content_type=_FILES[name], headers=dict(_HEADERS))


async def index(web: View, request: Request) -> Response:
    return _serve(web, "index.html")


async def static(web: View, request: Request, name: str) -> Response:
    if name not in _FILES:
        return web.json({"error": f"no file {name!r}"}, status=404)
    return _serve(web, name)


def install(app: App) -> None:
    app.page("/")(index)
    app.page("/static/{name}")(static)
