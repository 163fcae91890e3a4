"""The ANN shard servers' wire format: length-prefixed frames over TCP, each signed with HMAC-SHA256.

A frame is MAGIC, the body's length (4 bytes, big-endian), the body, then HMAC-SHA256(secret, MAGIC + length +
body). A body is a JSON header (2-byte length first) followed by raw little-endian numbers: a search sends its
queries as float32 (n x d); an answer returns scores as float32 then catalog ids as int64 (n x k each). Nothing
is pickled, so a frame from anyone can at worst be refused, never run code (FAISS's `contrib.client_server`
pickles and is not used).

Both directions are signed with the shared secret (`RECSVC_ANN_SHARD_SECRET`): the server answers nothing but a
refusal to a frame whose MAC does not check (`hmac.compare_digest`) or whose time is more than `MAX_SKEW_S` from
its clock, and the client takes no answer whose MAC does not check or that does not echo its request's nonce.
A replayed search inside the skew window is answered again: searching is read-only, so a replay learns nothing
that the recorded answer did not already hold.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import struct
from typing import Any

import numpy as np

MAGIC = b"RSA1"
_PREFIX = struct.Struct(">4sI")
MAC_BYTES = hashlib.sha256().digest_size
MAX_BODY_BYTES = 64 << 20  # a frame announcing more is refused before it is read
MAX_SKEW_S = 60.0
MAX_K = 10_000
QUERY_DTYPE = np.dtype("<f4")
SCORE_DTYPE = np.dtype("<f4")
ID_DTYPE = np.dtype("<i8")


class ProtocolError(Exception):
    """A frame that cannot be read: truncated, too large, badly formed."""


class Unauthenticated(ProtocolError):
    """A frame whose MAC does not check with our secret."""


def _mac(secret: bytes, prefix: bytes, body: bytes) -> bytes:
    return hmac.new(secret, prefix + body, hashlib.sha256).digest()


def encode(secret: bytes, header: dict[str, Any], payload: bytes = b"") -> bytes:
    """One signed frame: the header as JSON, then the payload's raw bytes."""
    head = json.dumps(header, separators=(",", ":")).encode()
    body = struct.pack(">H", len(head)) + head + payload
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError(f"frame of {len(body)} bytes, the limit is {MAX_BODY_BYTES}")
    prefix = _PREFIX.pack(MAGIC, len(body))
    return prefix + body + _mac(secret, prefix, body)


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ProtocolError("connection closed mid-frame" if got or chunks else "connection closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket, secret: bytes) -> tuple[dict[str, Any], memoryview]:
    """(header, payload) of the next frame on `sock`; raises Unauthenticated if its MAC does not check."""
    prefix = _read_exactly(sock, _PREFIX.size)
    magic, length = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError("not a shard protocol frame")
    if length > MAX_BODY_BYTES or length < 2:
        raise ProtocolError(f"frame of {length} bytes refused (limit {MAX_BODY_BYTES})")
    body = _read_exactly(sock, length)
    mac = _read_exactly(sock, MAC_BYTES)
    # Checked before the body is parsed: an unsigned frame is never interpreted.
    if not hmac.compare_digest(mac, _mac(secret, prefix, body)):
        raise Unauthenticated("frame not signed with the shared secret")
    (head_len,) = struct.unpack(">H", body[:2])
    try:
        header = json.loads(body[2:2 + head_len])
    except ValueError as exc:
        raise ProtocolError("frame header is not JSON") from exc
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not an object")
    return header, memoryview(body)[2 + head_len:]


def array_of(payload: memoryview | bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """The payload's numbers as an array of `shape` (a ProtocolError if the sizes differ)."""
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(payload) != expected:
        raise ProtocolError(f"payload of {len(payload)} bytes, {shape} of {dtype} needs {expected}")
    return np.frombuffer(payload, dtype=dtype).reshape(shape)
