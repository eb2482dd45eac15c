"""The dashboard: server-rendered HTML pages on `kavi serve`, beside the API they read the same ledger as.

Every page is complete HTML from a Jinja2 template, readable with JavaScript off. One small script of our own
(``static/dashboard.js``, no build step, no third-party code) adds what needs it: the Live page follows the
API's event stream and inserts server-rendered rows as events arrive, and the promote, revoke and reject
buttons ask for confirmation (and a reason where the API records one) and then call the API itself, so they
pass the same token or same-origin rule as any other client. The kernel speed plot is an SVG drawn on the
server (:mod:`kavi.server.plots`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path as FilePath
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from kavi import __version__
from kavi.errors import KaviError
from kavi.ledger.models import ProposalStatus
from kavi.server import dashboard
from kavi.server.plots import speed_alt_text, speed_svg
from kavi.stages.common import Forge

HERE = FilePath(__file__).parent
MAX_PAGE_INTEGER = 2**53
SVG_MEDIA_TYPE = "image/svg+xml"
# The stream events the Live page listens for (EventSource dispatches a named event only to its listeners).
# Any of them makes the page fetch every row past its cursor, so a kind missing here is shown with the next.
LIVE_EVENT_KINDS = (
    "run.finished",
    "run.blocked",
    "run.refused",
    "build.started",
    "build.finished",
    "build.abandoned",
    "verification.finished",
    "research.noted",
    "promotion.trusted",
    "promotion.revoked",
    "server.job.started",
    "server.job.finished",
    *(f"proposal.{status.lower()}" for status in ProposalStatus),
)
NAVIGATION = (
    ("skills", "/skills", "Skills"),
    ("proposals", "/proposals", "Proposals"),
    ("live", "/live", "Live"),
    ("kernels", "/kernels", "Kernels"),
    ("integrity", "/integrity", "Integrity"),
)

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(("html",)),
    trim_blocks=True,
    lstrip_blocks=True,
)
NOTHING = "\N{EN DASH}"
templates.filters["short"] = lambda value: str(value)[:12] if value else NOTHING
templates.filters["when"] = lambda value: str(value)[:19].replace("T", " ") if value else NOTHING
templates.filters["seconds"] = lambda value: NOTHING if value is None else f"{float(value):.2f} s"
templates.filters["noun"] = dashboard.kind_noun
templates.globals.update(navigation=NAVIGATION, kavi_version=__version__)

router = APIRouter(include_in_schema=False)


def _forge(request: Request) -> Forge:
    forge: Forge = request.app.state.kavi.forge
    return forge


def render(template: str, /, **context: Any) -> str:
    return templates.get_template(template).render(**context)


async def _page(
    request: Request, template: str, section: str, gather: Callable[[Forge], dict[str, Any]]
) -> HTMLResponse:
    """Gather in a worker thread (the ledger reads block) and render there too; a KaviError is an HTML page
    with the status its problem object would carry."""
    forge = _forge(request)

    def work() -> tuple[int, str]:
        try:
            return 200, render(template, section=section, **gather(forge))
        except KaviError as exc:
            from kavi.server.problems import problem_of

            body = problem_of(exc)
            return int(body["status"]), render("error.html", section=section, problem=body)

    status, html = await anyio.to_thread.run_sync(work)
    return HTMLResponse(html, status_code=status)


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/skills", status_code=307)


@router.get("/skills")
async def skills(request: Request) -> HTMLResponse:
    return await _page(request, "skills.html", "skills", lambda forge: {"skills": dashboard.skills_page(forge)})


@router.get("/proposals")
async def proposals(request: Request, status: str | None = None) -> HTMLResponse:
    return await _page(
        request,
        "proposals.html",
        "proposals",
        lambda forge: {**dashboard.proposals_page(forge, status), "statuses": [s.value for s in ProposalStatus]},
    )


@router.get("/proposals/{reference}")
async def proposal(request: Request, reference: str) -> HTMLResponse:
    return await _page(request, "proposal.html", "proposals", lambda forge: dashboard.timeline(forge, reference))


@router.get("/verifications/{verification_id}")
async def verification(request: Request, verification_id: str) -> HTMLResponse:
    return await _page(
        request, "verification.html", "proposals", lambda forge: dashboard.verification_page(forge, verification_id)
    )


@router.get("/live")
async def live(request: Request) -> HTMLResponse:
    def gather(forge: Forge) -> dict[str, Any]:
        cursor = dashboard.last_sequence(forge)
        return {"events": dashboard.live_events(forge), "cursor": cursor, "kinds": LIVE_EVENT_KINDS}

    return await _page(request, "live.html", "live", gather)


@router.get("/live/rows")
async def live_rows(request: Request, after: int = Query(0, ge=0, le=MAX_PAGE_INTEGER)) -> HTMLResponse:
    """The rows past ``after``, newest first, as list items (what the Live page inserts)."""
    return await _page(
        request, "live_rows.html", "live", lambda forge: {"events": dashboard.live_events(forge, after=after)}
    )


@router.get("/kernels")
async def kernels(request: Request) -> HTMLResponse:
    return await _page(request, "kernels.html", "kernels", lambda forge: {"kernels": dashboard.kernels_page(forge)})


@router.get("/kernels/{reference}")
async def kernel(request: Request, reference: str) -> HTMLResponse:
    def gather(forge: Forge) -> dict[str, Any]:
        found = dashboard.kernel_page(forge, reference)
        return {**found, "alt": speed_alt_text(found["proposal"]["name"], found["speed"])}

    return await _page(request, "kernel.html", "kernels", gather)


@router.get("/kernels/{reference}/speed.svg")
async def kernel_plot(request: Request, reference: str) -> Response:
    forge = _forge(request)

    def work() -> bytes:
        found = dashboard.kernel_page(forge, reference)
        return speed_svg(found["proposal"]["name"], found["speed"])

    return Response(await anyio.to_thread.run_sync(work), media_type=SVG_MEDIA_TYPE)


@router.get("/integrity")
async def integrity(request: Request, full: bool = False) -> HTMLResponse:
    return await _page(
        request,
        "integrity.html",
        "integrity",
        lambda forge: {**dashboard.integrity_page(forge, full=full), "full": full},
    )


@router.get("/integrity/attestations/{name}/{version}")
async def attestation(
    request: Request, name: str, version: Annotated[int, Path(ge=1, le=MAX_PAGE_INTEGER)]
) -> HTMLResponse:
    return await _page(
        request, "attestation.html", "integrity", lambda forge: dashboard.attestation_page(forge, name, version)
    )


def install(api: FastAPI) -> None:
    """Hook the pages and their static files into the app (called by :func:`kavi.server.app.create_app`)."""
    api.include_router(router)
    api.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
