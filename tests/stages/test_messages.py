"""Messages that were wrong or stale (issue 11 §4): a resumed manual build, a rejected proposal, promoting
twice, revocation (who, when, why) and re-trusting revoked bytes, a waiting manual build that blocks."""

from __future__ import annotations

import sqlite3

from kavi.demo import recording_of
from kavi.workspace import Workspace
from tests.support import WORD_COUNT_ARGS, run_cli


def _propose() -> str:
    result = run_cli("propose-skill", *WORD_COUNT_ARGS, "--json")
    assert result.code == 0, result.stdout + result.stderr
    return str(result.json()["proposal_id"])


def _replay(proposal: str) -> None:
    built = run_cli("build-skill", proposal, "--builder", "replay", "--replay-from", str(recording_of("word_count")))
    assert built.code == 0, built.stdout + built.stderr


def test_a_waiting_manual_build_names_every_way_out_and_its_success_waits_for_no_one(workspace: Workspace) -> None:
    proposal = _propose()
    waiting = run_cli("build-skill", proposal, "--builder", "manual", "--json").json()
    assert waiting["status"] == "AWAITING_INPUT"

    blocked = run_cli("build-skill", proposal, "--builder", "replay", "--replay-from", str(recording_of("word_count")))
    assert blocked.code == 1
    message = " ".join(blocked.stderr.split())
    for way_out in ("--resume`", "--resume --from DIR", f"kavi reject {proposal}", waiting["sandbox"]):
        assert way_out in message, (way_out, message)

    resumed = run_cli("build-skill", proposal, "--resume", "--from", str(recording_of("word_count")))
    assert resumed.code == 0, resumed.stdout + resumed.stderr
    assert "SUCCEEDED" in resumed.stdout and "waiting" not in resumed.stdout
    shown = run_cli("show", proposal)
    assert "waiting for a person" not in shown.stdout, shown.stdout
    builds = run_cli("show", proposal, "--json").json()["builds"]
    assert builds[0]["status"] == "SUCCEEDED" and builds[0]["reason"] is None


def test_a_rejected_proposal_suggests_no_refused_command(workspace: Workspace) -> None:
    proposal = _propose()
    _replay(proposal)
    assert run_cli("reject", proposal).code == 0
    for command in ("verify-skill", "promote-skill"):
        refused = run_cli(command, proposal)
        assert refused.code == 1
        assert "REJECTED" in refused.stderr and "propose-skill" in refused.stderr, refused.stderr
        for suggestion in ("verify-skill", "build-skill", "promote-skill"):
            assert f"`kavi {suggestion}" not in refused.stderr, refused.stderr


def test_revocation_is_recorded_and_revoked_bytes_need_a_fresh_verification(workspace: Workspace) -> None:
    proposal = _propose()
    _replay(proposal)
    assert run_cli("verify-skill", proposal).code == 0
    assert run_cli("promote-skill", proposal, "--approver", "alice").code == 0

    again = run_cli("promote-skill", proposal, "--approver", "alice")
    assert again.code == 0 and "interrupted" not in again.stdout and "already" in again.stdout, again.stdout

    revoked = run_cli("revoke", "word_count", "--reason", "leaks timing", "--by", "bob")
    assert revoked.code == 0, revoked.stderr
    version = run_cli("show", "word_count", "--json").json()["versions"][0]
    assert (version["status"], version["revoked_by"], version["revoked_reason"]) == ("REVOKED", "bob", "leaks timing")
    assert version["revoked_at"]
    shown = " ".join(run_cli("show", "word_count").stdout.split())
    assert f"revoked by bob at {version['revoked_at']}: leaks timing" in shown, shown

    # the same bytes, the same old verification: refused, naming the revocation and both ways forward
    refused = run_cli("promote-skill", proposal, "--approver", "carol")
    assert refused.code == 1
    message = " ".join(refused.stderr.split())
    assert "revoked by bob" in message and "leaks timing" in message and "--reinstate" in message, message
    assert not (workspace.skills_dir / "word_count.py").exists()

    # an explicit reinstatement is recorded in the promotion event
    reinstated = run_cli("promote-skill", proposal, "--approver", "carol", "--reinstate", "--json")
    assert reinstated.code == 0, reinstated.stdout + reinstated.stderr
    assert reinstated.json()["reinstated"] == [version["id"]]
    with sqlite3.connect(workspace.root / ".kavi" / "ledger.db") as conn:
        payload = conn.execute(
            "SELECT payload FROM events WHERE kind = 'promotion.trusted' ORDER BY id DESC"
        ).fetchone()
    assert version["id"] in payload[0]

    # a verification made after the revocation is enough on its own
    assert run_cli("revoke", "word_count", "--reason", "again").code == 0
    assert run_cli("promote-skill", proposal, "--approver", "carol").code == 1
    assert run_cli("verify-skill", proposal).code == 0
    fresh = run_cli("promote-skill", proposal, "--approver", "carol", "--json")
    assert fresh.code == 0 and fresh.json()["version"] == 3 and fresh.json()["reinstated"] == []
