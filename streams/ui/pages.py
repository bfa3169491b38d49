"""Serves the page at /ui: our files from streams/ui/static, the two libraries it loads
from the npm packages `make` installed (package-lock.json pins them), and its settings.
Nothing is fetched from a CDN, so the page works without internet access. None of it
needs a key: the page holds no data, it asks the API with the key it is given."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from streams.api.errors import not_found
from streams.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
# what the page loads of each npm package, by the name it asks for
VENDOR = {
    "uplot.js": "uplot/dist/uPlot.iife.min.js",
    "uplot.css": "uplot/dist/uPlot.min.css",
    "leaflet.js": "leaflet/dist/leaflet.js",
    "leaflet.css": "leaflet/dist/leaflet.css",
}
_OURS = {path.name: path for path in STATIC.iterdir() if path.suffix in _TYPES}


def router(settings: Settings) -> APIRouter:
    modules = Path(settings.ui_modules)
    config = {"tiles": settings.map_tiles, "attribution": settings.map_attribution}
    routes = APIRouter(prefix="/ui", include_in_schema=False)

    @routes.get("")
    async def index() -> Response:
        return _file(STATIC / "index.html")

    @routes.get("/config.json")
    async def page_config() -> JSONResponse:
        return JSONResponse(config)

    @routes.get("/vendor/{name}")
    async def vendor(name: str) -> Response:
        if name not in VENDOR:
            raise not_found(f"library {name}")
        path = modules / VENDOR[name]
        if not path.is_file():
            raise not_found(f"{path} (run `make ui` to install the page's npm packages)")
        return _file(path)

    @routes.get("/{name}")
    async def own(name: str) -> Response:
        if name not in _OURS:
            raise not_found(f"page file {name}")
        return _file(_OURS[name])

    return routes


def _file(path: Path) -> Response:
    return Response(path.read_bytes(), media_type=_TYPES[path.suffix],
                    headers={"Cache-Control": "no-cache"})
