"""The channel a kernel child answers on: a file the parent trusts only when the harness signed it.

The parent draws a one-time key and writes it to the child's stdin; the child's harness reads it
before it imports any candidate code, keeps it in a local, and signs its answer file (HMAC-SHA256)
after the last candidate call. A candidate can write files in its scratch folder, print, or exit
early, but it cannot produce the signature: numbers it forges (times, outputs, verdicts) are refused
as ``timing-channel`` instead of believed. This module imports nothing heavy: the child uses it.
"""

from __future__ import annotations

import hashlib
import hmac

MAC_SUFFIX = ".mac"
KEY_BYTES = 32


def answer_mac(key: bytes, data: bytes) -> str:
    """HMAC-SHA256 of an answer under the run's key (the child signs, the parent verifies)."""
    return hmac.new(key, data, hashlib.sha256).hexdigest()
