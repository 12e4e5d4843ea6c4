"""The merchant and admin console under /console: server-rendered pages over the stored
orders and cases, whose forms call the very route functions of the JSON API (same checks,
same messages). Sign-in, CSRF and the operator's zone live in `session`; what every page
shares in `pages`."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles
from starlette.routing import Mount

from api.console import bulk, cases, orders, settlement, signin
from api.console.pages import problem_page

__all__ = ["problem_page", "router", "static"]

router = APIRouter()
for module in (signin, bulk, orders, cases, settlement):  # bulk: before /orders/{id}
    router.include_router(module.router)
static = Mount(
    "/console/static",
    StaticFiles(directory=Path(__file__).parent / "static"),
    name="console-static",
)
