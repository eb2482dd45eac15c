"""The dashboard in a real browser: Debian's chromium, driven headless by Playwright, against a real
`kavi serve` on 127.0.0.1 over a workspace made by the real stages (the demo's skills and kernel, and a skill
whose first attempt failed verification).

Each test saves a screenshot of its page under ``KAVI_TEST_ARTIFACTS`` (or a pytest temporary folder).
Under ``CI=true`` a missing chromium is a failure, not a skip: CI installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kavi.demo import DEMO_SKILLS, recording_of, run_demo
from kavi.stages.common import Forge
from kavi.stages.forge import forge_skill
from kavi.stages.propose import propose_skill
from kavi.workspace import Workspace
from tests.server.conftest import Served, start_server, stop_server

pytestmark = pytest.mark.slow
ARTIFACTS_ENV = "KAVI_TEST_ARTIFACTS"
CHROMIUM_ENV = "KAVI_CHROMIUM"
FAILING_TEST = (
    "from count_words import CountWords, CountWordsInput\n\n\n"
    "def test_counts_characters_by_mistake() -> None:\n"
    "    assert CountWords().execute(CountWordsInput(text='ab')).count == 2\n"
)


def chromium_path() -> str:
    found = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (`apt-get install chromium`)")
    return found


def _count_words_attempts(target: Path) -> Path:
    """The shipped word_count recording renamed to count_words, twice: the first attempt's test is wrong."""
    for number, failing in ((1, True), (2, False)):
        folder = target / f"attempt-{number}" / "skills"
        folder.mkdir(parents=True)
        for source in (recording_of("word_count") / "skills").glob("*.py"):
            text = source.read_text().replace("word_count", "count_words").replace("WordCount", "CountWords")
            (folder / source.name.replace("word_count", "count_words")).write_text(text)
        if failing:
            (folder / "test_count_words.py").write_text(FAILING_TEST)
    return target


@dataclass
class Dashboard:
    served: Served
    count_words: str  # VERIFIED on its second attempt
    failed_verification: str  # its first attempt's verification

    def url(self, path: str) -> str:
        return self.served.url + path


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    home = tmp_path_factory.mktemp("dash-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
        patch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        patch.delenv("KAVI_WORKSPACE", raising=False)
        root = tmp_path_factory.mktemp("dash") / "ws"
        assert run_demo(root, lambda *_: None, kernels=True).ok
        recording = _count_words_attempts(tmp_path_factory.mktemp("dash-recording"))
        with Forge.opened(Workspace(root)) as forge:
            proposal = propose_skill(
                forge,
                name="count_words",
                description="Count the words in a text",
                side_effect="READ_ONLY",
                io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
            ).proposal_id
            forged = forge_skill(forge, proposal, builder_name="replay", builder_options={"source": str(recording)})
        assert forged.status == "VERIFIED" and len(forged.attempts) == 2, forged.attempts
        served = start_server(root)
    try:
        yield Dashboard(served, proposal, str(forged.attempts[0]["verification_id"]))
    finally:
        stop_server(served)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get(ARTIFACTS_ENV)
    folder = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--headless", "--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


def _shot(page: Any, artifacts: Path, name: str) -> None:
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one


def test_the_skills_page_lists_the_demo_skills(dashboard: Dashboard, page: Any, artifacts: Path) -> None:
    page.goto(dashboard.url("/skills"))
    for name in [skill.name for skill in DEMO_SKILLS] + ["vector_add"]:
        section = page.locator(f"section[data-skill='{name}']")
        assert section.locator("h2").inner_text().split() == [name, "TRUSTED"]
        assert "landlock" in section.locator("table").inner_text()  # the isolation layers its verification had
    word_count = page.locator("section[data-skill='word_count']")
    assert "refused" in word_count.inner_text()  # the demo's tampered copy, refused before it ran
    assert "READ_ONLY" in word_count.inner_text()
    _shot(page, artifacts, "skills")


def test_a_run_through_the_api_appears_on_the_live_page_without_a_reload(
    dashboard: Dashboard, page: Any, artifacts: Path
) -> None:
    page.goto(dashboard.url("/live"))
    page.wait_for_selector("#live-events[data-connected='true']")
    page.evaluate("window.kaviSamePage = true")
    with dashboard.served.client() as client:
        ran = client.post("/api/v1/skills/word_count/run", json={"text": "seen live"}).json()
    row = page.locator(f"li[data-execution='{ran['execution_id']}']")
    row.wait_for()
    assert "run.finished" in row.inner_text() and "word_count" in row.inner_text()
    assert page.evaluate("window.kaviSamePage") is True  # the same document: no reload happened
    _shot(page, artifacts, "live")


def test_a_failed_verification_page_shows_the_failing_gate_report(
    dashboard: Dashboard, page: Any, artifacts: Path
) -> None:
    page.goto(dashboard.url(f"/verifications/{dashboard.failed_verification}"))
    report = page.locator("details[data-gate='pytest']")
    assert report.get_attribute("open") is not None  # a failing gate's report is open, not behind a click
    assert "test_counts_characters_by_mistake" in report.locator("pre").inner_text()
    assert page.locator("tr.gate-row-fail").locator("th").inner_text() == "pytest"
    passing = page.locator("details[data-gate='ruff']")
    assert passing.get_attribute("open") is None
    _shot(page, artifacts, "verification-failed")


def test_the_timeline_shows_both_attempts_with_the_diff_and_the_research_note(
    dashboard: Dashboard, page: Any, artifacts: Path
) -> None:
    page.goto(dashboard.url(f"/proposals/{dashboard.count_words}"))
    assert page.locator("article.attempt").count() == 2
    second = page.locator("#attempt-2")
    diff = second.locator("pre.diff")
    assert "-def test_counts_characters_by_mistake" in diff.inner_text()
    first = page.locator("#attempt-1")
    assert "VERIFY_TEST" in first.locator("section.note").inner_text()
    assert "FAILED" in first.locator("section.verification h4").inner_text()
    first.locator("details.transcript summary").click()
    transcript = first.locator("details.transcript").inner_text()
    assert "→ Write skills/test_count_words.py" in transcript and "build.finished" in transcript
    _shot(page, artifacts, "timeline")


def test_promote_asks_for_confirmation_then_promotes_through_the_api(
    dashboard: Dashboard, page: Any, artifacts: Path
) -> None:
    page.goto(dashboard.url(f"/proposals/{dashboard.count_words}"))
    page.get_by_role("button", name="Promote…").click()
    dialog = page.locator("#promote-dialog")
    assert dialog.is_visible()
    _shot(page, artifacts, "promote-confirmation")
    dialog.get_by_role("button", name="Cancel").click()
    assert not dialog.is_visible()
    with dashboard.served.client() as client:
        assert client.get(f"/api/v1/proposals/{dashboard.count_words}").json()["proposal"]["status"] == "VERIFIED"
    page.get_by_role("button", name="Promote…").click()
    dialog.get_by_label("Reason (recorded in the ledger)").fill("reviewed the diff and every gate")
    dialog.get_by_label("Type count_words to confirm").fill("count_word")
    dialog.get_by_role("button", name="Promote", exact=True).click()
    assert "Type count_words to confirm" in dialog.locator("output").inner_text()
    with dashboard.served.client() as client:
        assert client.get(f"/api/v1/proposals/{dashboard.count_words}").json()["proposal"]["status"] == "VERIFIED"
    dialog.get_by_label("Type count_words to confirm").fill("count_words")
    with page.expect_navigation():
        dialog.get_by_role("button", name="Promote", exact=True).click()
    assert page.locator("h1").inner_text().split() == ["count_words", "TRUSTED"]
    with dashboard.served.client() as client:
        trusted = client.get("/api/v1/skills/count_words").json()
        events = client.get("/api/v1/events", params={"after": 0, "limit": 500}).json()["events"]
    assert trusted["status"] == "TRUSTED" and trusted["proposal_id"] == dashboard.count_words
    [approval] = [e for e in events if e["kind"] == "promotion.trusted" and e["proposal_id"] == dashboard.count_words]
    assert approval["payload"]["reason"] == "reviewed the diff and every gate"


def test_revoke_needs_a_reason_and_records_it(dashboard: Dashboard, page: Any) -> None:
    page.goto(dashboard.url("/proposals/write_note"))
    page.get_by_role("button", name="Revoke v1…").click()
    dialog = page.locator("#revoke-dialog")
    dialog.get_by_role("button", name="Revoke", exact=True).click()
    assert dialog.is_visible()  # the empty reason is refused by the form before anything is sent
    with dashboard.served.client() as client:
        assert client.get("/api/v1/skills/write_note").json()["status"] == "TRUSTED"
    dialog.get_by_label("Reason (recorded in the ledger)").fill("writes notes nobody reads")
    with page.expect_navigation():
        dialog.get_by_role("button", name="Revoke", exact=True).click()
    with dashboard.served.client() as client:
        version = client.get("/api/v1/skills/write_note/versions/1").json()
    assert version["status"] == "REVOKED" and version["revoked_reason"] == "writes notes nobody reads"


def test_a_kernel_page_shows_its_plot(dashboard: Dashboard, page: Any, artifacts: Path) -> None:
    page.goto(dashboard.url("/kernels/vector_add"))
    plot = page.locator("img#speed-plot")
    plot.wait_for()
    page.wait_for_function("document.getElementById('speed-plot').complete")
    assert page.evaluate("document.getElementById('speed-plot').naturalWidth") > 300
    assert "unmeasured" in (plot.get_attribute("alt") or "")
    assert "Unmeasured:" in page.locator(".unmeasured-note").inner_text()
    cells = page.locator("table.matrix td")
    assert cells.count() == 6  # 2 check sizes x 3 dtypes
    assert "pass" in page.locator("table.matrix").inner_text()
    _shot(page, artifacts, "kernel")


def test_the_integrity_page_shows_the_audit_lock_and_attestations(
    dashboard: Dashboard, page: Any, artifacts: Path
) -> None:
    page.goto(dashboard.url("/integrity"))
    assert "Audit: OK" in page.locator("#audit-title").inner_text()
    lock = page.locator("#lock-title + p").inner_text()
    assert lock.startswith("in sync kavi.lock agrees with the ledger"), lock  # promotion keeps the lock in step
    _shot(page, artifacts, "integrity")
    page.get_by_role("link", name="vector_add v1").click()
    assert page.locator("h1").inner_text() == "Attestation of vector_add v1"
    assert "https://in-toto.io/Statement" in page.locator("pre").inner_text()
    _shot(page, artifacts, "attestation")


def test_the_keyboard_reaches_the_skip_link_first_and_it_moves_to_the_content(dashboard: Dashboard, page: Any) -> None:
    page.goto(dashboard.url("/skills"))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_the_pages_read_without_javascript(dashboard: Dashboard, browser: Any, artifacts: Path) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(dashboard.url(f"/verifications/{dashboard.failed_verification}"))
        assert "test_counts_characters_by_mistake" in page.locator("details[data-gate='pytest'] pre").inner_text()
        page.goto(dashboard.url("/proposals/word_count"))
        assert page.get_by_role("button", name="Revoke v1…").is_disabled()  # a decision needs the script
        assert "kavi revoke word_count" in page.locator("noscript").inner_text()
        page.goto(dashboard.url("/live"))
        assert page.locator("#live-events li").count() > 5
        _shot(page, artifacts, "live-without-javascript")
    finally:
        context.close()
