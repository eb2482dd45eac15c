"""The HTTP API (``/api/v1``), its event stream, and the MCP endpoint (``/mcp``), in one ASGI app.

Every handler calls the stage function the CLI calls; blocking work runs in a worker thread; long stages are
jobs (:mod:`kavi.server.jobs`). Errors are RFC 9457 problem objects (:mod:`kavi.server.problems`). Promotions,
revocations and rejections reach MCP clients as list_changed through the ledger watcher
(:meth:`kavi.server.mcp_tools.KaviTools.watch_ledger`), whoever made them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from kavi import __version__
from kavi.errors import KaviError
from kavi.ledger.ids import utc_now
from kavi.server import pages, views
from kavi.server.jobs import JobTable
from kavi.server.mcp_tools import KaviTools
from kavi.server.problems import PROBLEM_MEDIA_TYPE, problem, problem_of
from kavi.server.runner import Runner
from kavi.server.security import Access, AccessMiddleware
from kavi.stages.common import Forge

STREAM_POLL_S = 0.2
MAX_INTEGER = 2**53  # versions and sequences past this are not ids SQLite could hold, nor JSON carry exactly
KEEPALIVE_S = 15


class ProposalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str
    side_effect: str
    io_schema: dict[str, Any]
    examples: list[dict[str, Any]] = Field(default_factory=list)
    write_roots: list[str] = Field(default_factory=list)
    allow_hosts: list[str] = Field(default_factory=list)
    secrets: list[str] = Field(default_factory=list)
    executables: list[str] = Field(default_factory=list)


class BuildIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    builder: str | None = None
    replay_from: str | None = None


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allow_unmeasured: bool = False
    reason: str | None = Field(default=None, max_length=2000)


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1)
    version: int | None = Field(default=None, ge=1, le=MAX_INTEGER)


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = None


class ServerState:
    """What the handlers share: the opened workspace, the runner, the job table and the MCP tools."""

    def __init__(self, forge: Forge, runner: Runner, access: Access, keepalive_s: float) -> None:
        self.forge = forge
        self.keepalive_s = keepalive_s
        self.runner = runner
        self.access = access
        self.jobs = JobTable(forge.workspace)
        self.tools = KaviTools(forge, runner)


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.kavi
    return state


def _identity(request: Request) -> str:
    return str(request.scope.get("kavi.identity") or _state(request).access.local_identity)


def _thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    return anyio.to_thread.run_sync(lambda: function(*args, **kwargs))


router = APIRouter(prefix="/api/v1")


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    state = _state(request)
    return {
        "ok": True,
        "version": __version__,
        "workspace": state.forge.workspace.root.name,
        "time": utc_now(),
        "runner": state.runner.describe(),
    }


@router.get("/skills")
async def list_skills(request: Request, all_versions: bool = False) -> dict[str, Any]:
    from kavi.stages.queries import list_skills as query

    return {"skills": await _thread(query, _state(request).forge, include_revoked=all_versions)}


@router.get("/skills/{name}")
async def get_skill(request: Request, name: str) -> dict[str, Any]:
    return dict(await _thread(views.skill_version, _state(request).forge, name, None))


@router.get("/skills/{name}/versions/{version}")
async def get_skill_version(
    request: Request, name: str, version: Annotated[int, Path(ge=1, le=MAX_INTEGER)]
) -> dict[str, Any]:
    return dict(await _thread(views.skill_version, _state(request).forge, name, version))


@router.post("/skills/{name}/run")
async def run_skill(request: Request, name: str, payload: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    result = await _thread(_state(request).runner.run, name, payload)
    return {"ok": True, **asdict(result)}


@router.post("/proposals", status_code=202)
async def create_proposal(request: Request, body: ProposalIn) -> dict[str, Any]:
    from kavi.stages.propose import propose_skill

    proposed = await _thread(
        propose_skill,
        _state(request).forge,
        name=body.name,
        description=body.description,
        side_effect=body.side_effect.upper(),
        io_schema=body.io_schema,
        examples=body.examples,
        write_roots=tuple(body.write_roots),
        allow_hosts=tuple(body.allow_hosts),
        secrets=tuple(body.secrets),
        executables=tuple(body.executables),
    )
    return asdict(proposed)


@router.get("/proposals/{reference}")
async def get_proposal(request: Request, reference: str) -> dict[str, Any]:
    from kavi.stages.queries import show

    return dict(await _thread(show, _state(request).forge, reference))


@router.post("/proposals/{reference}/builds", status_code=202)
async def start_build(request: Request, reference: str, body: BuildIn | None = None) -> dict[str, Any]:
    from kavi.stages.build import build_skill

    body = body or BuildIn()
    options = {"source": body.replay_from} if body.replay_from else None
    builder = body.builder or ("replay" if body.replay_from else None)

    def work(forge: Forge) -> Any:
        return build_skill(forge, reference, builder_name=builder, builder_options=options)

    return _state(request).jobs.start("build", reference, work).as_dict()


@router.get("/builds/{build_id}")
async def get_build(request: Request, build_id: str) -> dict[str, Any]:
    from kavi.stages.research import build_trace

    trace = await _thread(build_trace, _state(request).forge, build_id)
    return dict(trace["build"])


@router.get("/builds/{build_id}/trace")
async def get_trace(request: Request, build_id: str) -> dict[str, Any]:
    from kavi.stages.research import build_trace

    return dict(await _thread(build_trace, _state(request).forge, build_id))


@router.post("/proposals/{reference}/verifications", status_code=202)
async def start_verification(request: Request, reference: str) -> dict[str, Any]:
    from kavi.stages.verify import GateEvents, verify_skill

    def work(forge: Forge) -> Any:
        return verify_skill(forge, reference, progress=GateEvents())

    return _state(request).jobs.start("verify", reference, work).as_dict()


@router.get("/verifications/{verification_id}")
async def get_verification(request: Request, verification_id: str) -> dict[str, Any]:
    return dict(await _thread(views.verification, _state(request).forge, verification_id))


@router.get("/jobs/{job_id}")
async def get_job(request: Request, job_id: str) -> dict[str, Any]:
    return dict(await _thread(_state(request).jobs.get, job_id))


@router.post("/proposals/{reference}/promotion")
async def promote(request: Request, reference: str, body: PromoteIn | None = None) -> dict[str, Any]:
    from kavi.stages.promote import promote_skill

    promoted = await _thread(
        promote_skill,
        _state(request).forge,
        reference,
        approver=_identity(request),
        allow_unmeasured=(body or PromoteIn()).allow_unmeasured,
        reason=(body or PromoteIn()).reason,
    )
    return asdict(promoted)


@router.post("/skills/{name}/revocations")
async def revoke(request: Request, name: str, body: RevokeIn) -> dict[str, Any]:
    from kavi.stages.promote import revoke_skill

    state, identity = _state(request), _identity(request)
    revoked = await _thread(revoke_skill, state.forge, name, version=body.version, by=identity, reason=body.reason)
    return {**asdict(revoked), "by": identity, "reason": body.reason}


@router.post("/proposals/{reference}/rejection")
async def reject(request: Request, reference: str, body: RejectIn | None = None) -> dict[str, Any]:
    from kavi.stages.promote import reject_proposal

    rejected = await _thread(reject_proposal, _state(request).forge, reference, reason=(body or RejectIn()).reason)
    return asdict(rejected)


@router.get("/events")
async def list_events(
    request: Request,
    after: Annotated[int, Query(ge=0, le=MAX_INTEGER)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    events = await _thread(views.events_after, _state(request).forge, after, limit)
    return {"events": events, "next_after": events[-1]["seq"] if events else after}


@router.get("/events/stream", response_class=EventSourceResponse)
async def stream_events(
    request: Request,
    after: Annotated[int | None, Query(ge=0, le=MAX_INTEGER)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Server-Sent Events: each ledger event with its sequence as ``id``; ``Last-Event-ID`` resumes. Running
    jobs' progress (gates starting and finishing, a builder's output) comes as ``progress`` events without an
    ``id``: they are not ledger records, so a resumed stream neither counts nor replays them."""
    state = _state(request)
    forge, keepalive_s, bus = state.forge, state.keepalive_s, state.jobs.progress
    seen = bus.last()
    start = after
    if last_event_id is not None and last_event_id.strip().isdecimal() and len(last_event_id.strip()) < 16:
        start = int(last_event_id.strip())
    if start is None:
        start = await _thread(views.last_sequence, forge)

    async def generate() -> AsyncIterator[ServerSentEvent]:
        cursor, heard = start, seen
        while True:
            said = bus.after(heard)
            for item in said:
                heard = item["n"]
                yield ServerSentEvent(data=json.dumps(item, sort_keys=True), event="progress")
            fresh = await _thread(views.events_after, forge, cursor, 200)
            for event in fresh:
                cursor = event["seq"]
                yield ServerSentEvent(data=json.dumps(event, sort_keys=True), event=event["kind"], id=str(cursor))
            if not fresh and not said:
                await anyio.sleep(STREAM_POLL_S)

    return EventSourceResponse(generate(), ping=keepalive_s)


def create_app(forge: Forge, runner: Runner, access: Access, *, keepalive_s: float = KEEPALIVE_S) -> Any:
    """The ASGI app of one workspace: the API, the MCP endpoint, behind the access middleware.
    ``keepalive_s``: how often an idle event stream gets a comment line, so proxies keep it open."""
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager

    state = ServerState(forge, runner, access, keepalive_s)
    manager = StreamableHTTPSessionManager(app=state.tools.server)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with manager.run(), anyio.create_task_group() as group:
            group.start_soon(state.tools.watch_ledger)
            try:
                yield
            finally:
                group.cancel_scope.cancel()
                state.jobs.shutdown()

    api = FastAPI(
        title="kavi",
        version=__version__,
        description="TRUSTED skills and the forge's stages over HTTP; every call is a governed run.",
        lifespan=lifespan,
    )
    api.state.kavi = state
    api.include_router(router)
    pages.install(api)
    api.mount("/mcp", StreamableHTTPASGIApp(manager))

    @api.exception_handler(KaviError)
    async def kavi_error(_: Request, exc: KaviError) -> JSONResponse:
        body = problem_of(exc)
        return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_MEDIA_TYPE)

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        body = problem(422, "UsageError", detail or "invalid request", error_type="UsageError")
        return JSONResponse(body, status_code=422, media_type=PROBLEM_MEDIA_TYPE)

    @api.exception_handler(Exception)
    async def bug(_: Request, exc: Exception) -> JSONResponse:
        body = problem(500, "Bug", f"kavi hit a bug: {type(exc).__name__}: {exc}", error_type="Bug")
        return JSONResponse(body, status_code=500, media_type=PROBLEM_MEDIA_TYPE)

    return AccessMiddleware(api, access)
