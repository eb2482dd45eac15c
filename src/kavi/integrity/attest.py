"""Provenance: an in-toto Statement v1 with a SLSA provenance v1 predicate for one TRUSTED version,
optionally signed with ed25519 as a DSSE envelope, and its verification against the workspace.

The subjects are the installed files (skill and test) by sha256. The resolved dependencies are everything
the version was made from and judged by: the frozen spec, the build packet, the candidate manifest, the
builder (and model, when the trace names one), the trace (a digest over the build's trace events' chain
hashes) and every gate's report. Verification re-derives all of these from the ledger and the artifact
store, so one changed byte anywhere makes it fail.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kavi.errors import IntegrityError, KaviError, NotFoundError, TransitionError, UsageError
from kavi.integrity.audit import open_ledger
from kavi.layout import installed_paths
from kavi.ledger import queries
from kavi.ledger.connection import LedgerConnection
from kavi.workspace import Workspace

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:kavi:build:python-skill:v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
# Dependencies whose digest names an artifact in the store (re-hashed on verification).
STORE_DEPENDENCIES = ("spec", "build-packet", "candidate")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- building the statement --------------------------------------------------------------------------------


def make_statement(workspace: Workspace, name: str, version: int | None = None) -> dict[str, Any]:
    """The provenance of ``name`` (latest TRUSTED version, or ``version``); refuses tampered installed files."""
    with open_ledger(workspace) as conn, conn.snapshot():
        promotion, installed = _promotion(conn, name, version)
        subjects = _subjects(workspace, promotion, installed)
        return {
            "_type": STATEMENT_TYPE,
            "subject": subjects,
            "predicateType": PREDICATE_TYPE,
            "predicate": _predicate(conn, promotion),
        }


def _promotion(conn: LedgerConnection, name: str, version: int | None) -> tuple[dict[str, Any], bool]:
    rows = conn.mappings(queries.TRUSTED_PROMOTIONS_WITH_KIND_OF, (name,))
    if not rows:
        raise NotFoundError(f"{name} has no TRUSTED version to attest", hint="`kavi list-skills`")
    if version is None:
        return rows[0], True
    for row in rows:
        if row["version"] == version:
            return row, row is rows[0]
    raise TransitionError(f"{name} v{version} is not a TRUSTED version", hint="`kavi list-skills --all`")


def _subjects(workspace: Workspace, promotion: dict[str, Any], installed: bool) -> list[dict[str, Any]]:
    subjects = []
    name = promotion["name"]
    for relative, digest in zip(
        installed_paths(promotion["kind"], name), (promotion["skill_sha256"], promotion["test_sha256"]), strict=True
    ):
        if installed:
            path = workspace.root / relative
            actual = _sha(path.read_bytes()) if path.is_file() else "missing"
            if actual != digest:
                raise IntegrityError(
                    f"{relative} is not the TRUSTED bytes of {name} v{promotion['version']}; refusing to attest it",
                    hint="run `kavi audit`",
                )
        subjects.append({"name": relative, "digest": {"sha256": digest}})
    return subjects


def trace_digest(conn: LedgerConnection, build_id: str) -> tuple[str, int, str | None]:
    """sha256 over the chain hashes of the build's trace events, their count, and the model if one is named."""
    rows = conn.execute(queries.TRACE_EVENTS_OF_BUILD, (build_id,)).fetchall()
    model = None
    for row in rows:
        data = json.loads(row[1])
        if isinstance(data, dict) and isinstance(data.get("model"), str):
            model = data["model"]
    return _sha("\n".join(row[0] for row in rows).encode()), len(rows), model


def _gate_digest(row: dict[str, Any]) -> str:
    if row["report_sha256"]:
        return str(row["report_sha256"])
    return _sha(_canonical({"gate": row["gate"], "status": row["status"], "summary": row["summary"]}))


def _predicate(conn: LedgerConnection, promotion: dict[str, Any]) -> dict[str, Any]:
    build = conn.mapping(queries.BUILD_BY_ID, (promotion["build_id"],))
    verification = conn.mapping(queries.VERIFICATION_BY_ID, (promotion["verification_id"],))
    if build is None or verification is None:
        raise IntegrityError(
            f"promotion {promotion['id']} names a build or verification the ledger lacks", hint="run `kavi audit`"
        )
    # by gate name, in Python: the order must not depend on the server's collation
    gates = sorted(
        conn.mappings(queries.GATES_OF_VERIFICATION, (promotion["verification_id"],)), key=lambda g: str(g["gate"])
    )
    trace, trace_events, model = trace_digest(conn, build["id"])
    builder: dict[str, Any] = {"name": "builder", "uri": f"urn:kavi:builder:{build['builder']}"}
    if model:
        builder["annotations"] = {"model": model}
    dependencies: list[dict[str, Any]] = [
        {"name": "spec", "digest": {"sha256": promotion["spec_sha256"]}},
        {"name": "build-packet", "digest": {"sha256": build["packet_sha256"]}},
        {"name": "candidate", "digest": {"sha256": promotion["candidate_sha256"]}},
        builder,
        {"name": "trace", "digest": {"sha256": trace}, "annotations": {"events": trace_events}},
    ]
    dependencies += [
        {
            "name": f"gate:{g['gate']}",
            "digest": {"sha256": _gate_digest(g)},
            "annotations": {"status": g["status"], "report": bool(g["report_sha256"])},
        }
        for g in gates
    ]
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "name": promotion["name"],
                "version": promotion["version"],
                "proposal_id": promotion["proposal_id"],
                "side_effect": promotion["side_effect"],
                "builder": build["builder"],
            },
            "internalParameters": {
                "promotion_id": promotion["id"],
                "build_id": build["id"],
                "attempt": build["attempt"],
                "verification_id": verification["id"],
                "verification_isolation": verification["isolation"],
                "approver": promotion["approver"],
                "promoted_at": promotion["promoted_at"],
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": f"urn:kavi:builder:{build['builder']}"},
            "metadata": {
                "invocationId": build["id"],
                "startedOn": build["created_at"],
                "finishedOn": build["finished_at"],
            },
        },
    }


# --- keys and DSSE ---------------------------------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def keygen(prefix: Path) -> tuple[Path, Path]:
    """An ed25519 key pair: PREFIX.key (PKCS#8 PEM, mode 0600, never overwritten) and PREFIX.pub."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for path in (private_path, public_path):
        if path.exists():
            raise UsageError(f"{path} already exists; refusing to overwrite a key", hint="choose another --out")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path


def _key_id(public_raw: bytes) -> str:
    return _sha(public_raw)[:16]


def sign_envelope(statement: dict[str, Any], key_path: Path) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"cannot load the private key {key_path}: {exc}", hint="make one with `kavi keygen`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{key_path} is not an ed25519 private key", hint="make one with `kavi keygen`")
    payload = _canonical(statement)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": _key_id(raw), "sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode()}],
    }


def _check_signature(envelope: dict[str, Any], key_path: Path) -> tuple[bytes, list[str]]:
    """The envelope's payload, and problems (empty when one signature verifies with the key)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(key_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load the public key {key_path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{key_path} is not an ed25519 public key")
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = [base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]]
    except (KeyError, TypeError, ValueError):
        return b"", ["the envelope is malformed (payload or signatures)"]
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        return payload, [f"payloadType is {envelope.get('payloadType')!r}, not {PAYLOAD_TYPE}"]
    for signature in signatures:
        try:
            key.verify(signature, pae(PAYLOAD_TYPE, payload))
            return payload, []
        except InvalidSignature:
            continue
    return payload, ["no signature verifies with this key"]


# --- verifying -------------------------------------------------------------------------------------------


@dataclass
class AttestationCheck:
    file: str
    signed: bool
    signature_ok: bool | None
    ledger_checked: bool
    name: str | None = None
    version: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, **self.__dict__}


def verify_attestation(workspace: Workspace | None, path: Path, key: Path | None) -> AttestationCheck:
    """Check the signature (when signed) and every digest against the workspace and its ledger."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the attestation {path}: {exc}") from None
    if not isinstance(document, dict):
        raise UsageError(f"{path} is not an attestation (not a JSON object)")
    signed = "payloadType" in document
    check = AttestationCheck(str(path), signed, None, False)
    if signed:
        if key is None:
            check.problems.append("the attestation is signed; pass --key PUB to check its signature")
            payload = base64.b64decode(document.get("payload", ""), validate=False)
        else:
            payload, problems = _check_signature(document, key)
            check.signature_ok = not problems
            check.problems += problems
        try:
            statement = json.loads(payload)
        except ValueError:
            check.problems.append("the signed payload is not JSON")
            return check
    else:
        statement = document
        if key is not None:
            check.problems.append("--key was given but the attestation is not signed")
    _check_statement(workspace, statement, check)
    return check


def _check_statement(workspace: Workspace | None, statement: Any, check: AttestationCheck) -> None:
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        check.problems.append(f"not an in-toto Statement v1 (_type must be {STATEMENT_TYPE})")
        return
    if statement.get("predicateType") != PREDICATE_TYPE:
        check.problems.append(f"predicateType must be {PREDICATE_TYPE}")
    try:
        params = statement["predicate"]["buildDefinition"]["externalParameters"]
        check.name, check.version = str(params["name"]), int(params["version"])
        subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
        dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    except (KeyError, TypeError, ValueError):
        check.problems.append("the statement lacks subjects, parameters or dependencies")
        return
    if workspace is None:
        check.problems.append("no workspace to check the digests against")
        return
    if not workspace.has_ledger():
        _check_subjects_on_disk(workspace, subjects, check)
        return
    check.ledger_checked = True
    try:
        expected = make_statement(workspace, check.name, check.version)
    except KaviError as exc:
        check.problems.append(f"the workspace cannot vouch for {check.name} v{check.version}: {exc.message}")
        _check_subjects_on_disk(workspace, subjects, check)
        return
    _check_subjects_on_disk(workspace, subjects, check, installed_only=True)
    wanted = {s["name"]: s["digest"]["sha256"] for s in expected["subject"]}
    if wanted != subjects:
        check.problems.append("the subjects differ from the ledger's TRUSTED files")
    _compare_dependencies(workspace, dependencies, expected, check)
    if statement.get("predicate") != expected["predicate"]:
        check.problems.append("the provenance predicate differs from what the ledger records")


def _check_subjects_on_disk(
    workspace: Workspace, subjects: dict[str, str], check: AttestationCheck, *, installed_only: bool = False
) -> None:
    for relative, digest in sorted(subjects.items()):
        path = workspace.root / relative
        if not path.is_file():
            if not installed_only:
                check.problems.append(f"subject {relative} is missing")
            continue
        actual = _sha(path.read_bytes())
        if actual != digest and not installed_only:
            check.problems.append(f"subject {relative}: sha256 {actual[:12]} on disk, attested {str(digest)[:12]}")
        elif actual != digest:
            installed = _installed_version(workspace, check.name)
            if installed == check.version:
                check.problems.append(f"subject {relative}: sha256 {actual[:12]} on disk, attested {str(digest)[:12]}")


def _installed_version(workspace: Workspace, name: str | None) -> int | None:
    with open_ledger(workspace) as conn:
        latest = conn.scalar(queries.LATEST_TRUSTED_VERSION_OF, (name,))
        return int(latest) if latest is not None else None


def _compare_dependencies(
    workspace: Workspace, dependencies: Any, expected: dict[str, Any], check: AttestationCheck
) -> None:
    wanted = {
        d["name"]: d.get("digest", {}).get("sha256")
        for d in expected["predicate"]["buildDefinition"]["resolvedDependencies"]
    }
    try:
        given = {d["name"]: d.get("digest", {}).get("sha256") for d in dependencies}
    except (KeyError, TypeError, AttributeError):
        check.problems.append("resolvedDependencies is malformed")
        return
    for name in sorted(set(wanted) | set(given)):
        if wanted.get(name) != given.get(name):
            check.problems.append(
                f"dependency {name}: attested {str(given.get(name))[:12]}, ledger says {str(wanted.get(name))[:12]}"
            )
    store = workspace.artifacts_dir
    reports = [
        d["name"] for d in dependencies if isinstance(d.get("annotations"), dict) and d["annotations"].get("report")
    ]
    for name in (*STORE_DEPENDENCIES, *reports):
        digest = given.get(name)
        if not digest:
            continue
        path = store / digest[:2] / digest
        if not path.is_file() or _sha(path.read_bytes()) != digest:
            check.problems.append(f"dependency {name}: artifact {digest[:12]} is missing or modified in the store")
