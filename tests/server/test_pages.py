"""The dashboard's pages over HTTP on a real `kavi serve` (no browser: tests/server/test_pages_browser.py has
those), and the kernel report tables and plot they are drawn from."""

from __future__ import annotations

import hashlib
import re

import pytest

from kavi import __version__
from kavi.gpu.spec import KernelSpec
from kavi.server.kernel_reports import correctness_table, parse_speed_report, speed_result
from kavi.server.plots import speed_alt_text, speed_svg
from tests.server.conftest import Served, start_server, stop_server

PAGES = (
    "/skills",
    "/proposals",
    "/proposals/word_count",
    "/live",
    "/kernels",
    "/integrity",
    "/integrity?full=1",
    "/integrity/attestations/word_count/1",
)

# What KernelSpeedGate writes: one line per measured size and dtype, then its failure lines.
SPEED_REPORT = (
    "16777216 float32: kernel 0.2100 ms, torch 0.2300 ms, speedup 1.095 [1.020, 1.150], roofline 81%\n"
    "(64, 128) float16: kernel 0.0500 ms, torch 0.0400 ms, speedup 0.800 [0.750, 0.850]\n"
    "(64, 128) float16: CI lower bound 0.750 < 0.9"
)


def _kernel_spec() -> KernelSpec:
    source = "def reference(x, y):\n    return x + y\n"
    return KernelSpec(
        name="vector_add",
        description="add",
        reference_source=source,
        reference_sha256=hashlib.sha256(source.encode()).hexdigest(),
        check_sizes=(1000, (64, 128)),
        bench_sizes=(16777216, (64, 128)),
        dtypes=("float32", "float16"),
        min_speedup=0.9,
    )


def test_every_page_is_html_with_its_heading(served: Served) -> None:
    with served.client() as client:
        for path in PAGES:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:500])
            assert response.headers["content-type"].startswith("text/html")
            assert re.search(r"<h1>[^<]*\w", response.text), path
            assert f"kavi {__version__} ·" in response.text, path  # the footer: no page's context hides it
        skills = client.get("/skills").text
        verification = client.get("/api/v1/proposals/word_count").json()["verifications"][0]["id"]
        assert client.get(f"/verifications/{verification}").status_code == 200
    assert 'data-skill="word_count"' in skills and 'data-skill="save_text"' in skills
    assert "FILE_WRITE" in skills and "skill · side effect" in skills


def test_the_integrity_page_tells_a_lock_in_sync_from_one_that_is_not(served: Served) -> None:
    from kavi.integrity.lockfile import write_lock

    lock = write_lock(served.workspace)
    with served.client() as client:
        in_sync = client.get("/integrity").text
        lock.write_text(lock.read_text().replace("word_count", "word_countx", 1))
        broken = client.get("/integrity").text
    lock.unlink()
    assert "in sync" in in_sync and "out of sync" not in in_sync
    assert "out of sync" in broken


def test_the_root_leads_to_the_skills_page(served: Served) -> None:
    with served.client() as client:
        response = client.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/skills"


def test_an_unknown_proposal_is_an_html_page_with_the_status_and_hint(served: Served) -> None:
    with served.client() as client:
        response = client.get("/proposals/no_such_skill")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "no proposal or skill" in response.text and "kavi status" in response.text


def test_what_a_proposal_says_is_escaped_on_its_page(served: Served) -> None:
    with served.client() as client:
        proposed = client.post(
            "/api/v1/proposals",
            json={
                "name": "shout",
                "description": "Shout <script>alert('x')</script> it",
                "side_effect": "READ_ONLY",
                "io_schema": {"input": {"text": "str"}, "output": {"text": "str"}},
            },
        ).json()
        page = client.get(f"/proposals/{proposed['proposal_id']}").text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert" in page


def test_the_live_rows_after_a_cursor_hold_a_new_run(served: Served) -> None:
    with served.client() as client:
        cursor = client.get("/api/v1/events", params={"after": 0, "limit": 500}).json()["next_after"]
        ran = client.post("/api/v1/skills/word_count/run", json={"text": "a b c"}).json()
        rows = client.get("/live/rows", params={"after": cursor}).text
        nothing = client.get("/live/rows", params={"after": cursor + 1000}).text
    assert f'data-execution="{ran["execution_id"]}"' in rows and "run.finished" in rows
    assert "<li" not in nothing


def test_with_a_token_the_pages_need_it_too(served: Served) -> None:
    server = start_server(served.workspace.root, token="page-secret")
    try:
        with server.client() as anonymous, server.client(Authorization="Bearer page-secret") as holder:
            assert anonymous.get("/skills").status_code == 401
            assert holder.get("/skills").status_code == 200
    finally:
        stop_server(server)


def test_the_speed_report_is_read_back_per_size_and_dtype() -> None:
    rows, other = parse_speed_report(SPEED_REPORT)
    assert [(row.size, row.dtype, row.speedup, row.low, row.high, row.roofline) for row in rows] == [
        ("16777216", "float32", 1.095, 1.02, 1.15, 0.81),
        ("(64, 128)", "float16", 0.8, 0.75, 0.85, None),
    ]
    assert other == ["(64, 128) float16: CI lower bound 0.750 < 0.9"]


def test_a_kernel_without_a_gpu_is_unmeasured_in_words() -> None:
    speed = speed_result(_kernel_spec(), "skipped", "unmeasured: no GPU: CUDA is not available on this machine", "")
    assert not speed.measured and speed.reason == "no GPU: CUDA is not available on this machine"
    assert "unmeasured" in speed_alt_text("vector_add", speed)
    svg = speed_svg("vector_add", speed).decode()
    assert svg.lstrip().startswith("<?xml") and "unmeasured" in svg and "CUDA is not available" in svg


def test_a_measured_kernel_plots_each_speedup_with_its_interval() -> None:
    speed = speed_result(_kernel_spec(), "fail", "(64, 128) float16: CI lower bound 0.750 < 0.9", SPEED_REPORT)
    assert speed.measured and len(speed.rows) == 2
    alt = speed_alt_text("vector_add", speed)
    assert "speedup 1.09 (95% CI 1.02 to 1.15), 81% of roofline" in alt
    svg = speed_svg("vector_add", speed).decode()
    assert "speedup float32" in svg and "roofline float32" in svg and "minimum 0.9" in svg
    assert "unmeasured" not in svg


@pytest.mark.parametrize(
    ("status", "summary", "report", "expected"),
    [
        (
            "pass",
            "PASS: 12 cases (cpu, dtypes float32); SKIPPED float16 (needs a GPU)",
            "",
            {("1000", "float32"): "pass", ("1000", "float16"): "skipped", ("(64, 128)", "float32"): "pass"},
        ),
        (
            "fail",
            "FAIL [tolerance]: case 3 ...",
            "[tolerance] case 3 (size (64, 128), float16, seed 7, normal): max error 0.5\n"
            "[poison] case 1 (size 1000, float32, seed 1, uniform): 3 element(s) differ",
            {
                ("(64, 128)", "float16"): "fail",
                ("1000", "float32"): "fail",
                ("1000", "float16"): "not reported",
            },
        ),
        (None, "", "", {("1000", "float32"): "unverified"}),
    ],
)
def test_the_correctness_table_has_a_verdict_per_size_and_dtype(
    status: str | None, summary: str, report: str, expected: dict[tuple[str, str], str]
) -> None:
    table = correctness_table(_kernel_spec(), status, report, summary)
    assert table["sizes"] == ["1000", "(64, 128)"] and table["dtypes"] == ["float32", "float16"]
    assert len(table["cells"]) == 4
    for cell, verdict in expected.items():
        assert table["cells"][cell][0] == verdict, cell
