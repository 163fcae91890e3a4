"""An ANN shard server: one process answering searches over slice i of n of each version's item index.

Run: `RECSVC_ANN_SHARD_SECRET=... python -m serving.shard_server --root ARTIFACT_DIR --shard I --of N --port P`.
A search names its index by the version's folder relative to `--root` (the artifact folder every serving
process and shard server sees, e.g. a shared volume); the server loads `<folder>/ann-shards/<I>-of-<N>.faiss`
(written by serving/prepare.py) memory-mapped on first use, keeps the last few loaded, and answers the top k
of its slice as catalog rows (the slice's offset added). It needs no database and no Django: only the
slices and the secret.

Every request is checked before it is read (serving/shard_protocol.py: HMAC over the frame, clock skew); a
refused or malformed request gets an error answer and the connection is closed. A connection may carry many
requests; one idle for `IDLE_TIMEOUT_S` is closed.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import socketserver
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from serving import shard_protocol as wire
from serving.shards import read_index_slice

log = logging.getLogger(__name__)
IDLE_TIMEOUT_S = 30.0
KEEP_LOADED = 4  # versions whose slice stays loaded (old versions drop out, least recently used first)
SECRET_ENV = "RECSVC_ANN_SHARD_SECRET"


class SliceStore:
    """Slice `shard` of `shards` of each version folder under `root`, loaded on first use."""

    def __init__(self, root: str | Path, shard: int, shards: int, keep: int = KEEP_LOADED) -> None:
        self.root = Path(root).resolve()
        self.shard, self.shards, self.keep = shard, shards, keep
        self._loaded: OrderedDict[str, tuple[faiss.Index, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str) -> tuple[faiss.Index, dict[str, Any]]:
        with self._lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return self._loaded[name]
            folder = (self.root / name).resolve()
            if not name or Path(name).is_absolute() or not folder.is_relative_to(self.root):
                raise LookupError(f"index {name!r} is not under the artifact root")
            try:
                loaded = read_index_slice(folder, self.shard, self.shards)
            except OSError as exc:
                raise LookupError(f"no slice {self.shard} of {self.shards} for {name!r}") from exc
            self._loaded[name] = loaded
            while len(self._loaded) > self.keep:
                self._loaded.popitem(last=False)
            return loaded


def answer(store: SliceStore, header: dict[str, Any], payload: memoryview, now: float) -> tuple[dict, bytes]:
    """The answer (header, payload) to one authenticated request."""
    if abs(now - float(header.get("ts", 0))) > wire.MAX_SKEW_S:
        return {"ok": False, "error": "stale or future request (clocks differ?)"}, b""
    op = header.get("op")
    if op == "ping":
        return {"ok": True, "shard": store.shard, "shards": store.shards}, b""
    if op != "search":
        return {"ok": False, "error": f"unknown op {op!r}"}, b""
    try:
        n, d, k = int(header["n"]), int(header["d"]), int(header["k"])
        if not (0 < n <= 4096 and 0 < k <= wire.MAX_K and 0 < d <= 4096):
            raise ValueError(f"n={n}, d={d}, k={k} out of range")
        queries = wire.array_of(payload, wire.QUERY_DTYPE, (n, d))
        index, meta = store.get(str(header["index"]))
        if index.d != d:
            raise ValueError(f"queries of dimension {d}, the index has {index.d}")
    except (KeyError, ValueError, TypeError, LookupError, wire.ProtocolError) as exc:
        return {"ok": False, "error": str(exc)}, b""
    kk = min(k, index.ntotal)
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), kk)
    ids = np.where(ids >= 0, ids + int(meta["offset"]), -1)
    # Short slices pad to k with -1 (score -inf), so every answer is n x k.
    out_scores = np.full((n, k), -np.inf, dtype=wire.SCORE_DTYPE)
    out_ids = np.full((n, k), -1, dtype=wire.ID_DTYPE)
    out_scores[:, :kk], out_ids[:, :kk] = scores, ids
    head = {"ok": True, "n": n, "k": k, "shard": store.shard, "ntotal": int(index.ntotal)}
    return head, out_scores.tobytes() + out_ids.tobytes()


class _Handler(socketserver.BaseRequestHandler):
    server: ShardServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(IDLE_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        secret = self.server.secret
        while True:
            try:
                header, payload = wire.read_frame(sock, secret)
            except wire.Unauthenticated:
                log.warning("refused an unauthenticated request from %s", self.client_address[0])
                self._reply({"ok": False, "error": "unauthenticated"}, b"")
                return
            except (wire.ProtocolError, OSError):
                return  # closed, idle, truncated or not our protocol: drop the connection
            head, body = answer(self.server.store, header, payload, time.time())
            head["nonce"] = header.get("nonce")
            if not self._reply(head, body) or not head["ok"]:
                return

    def _reply(self, header: dict[str, Any], payload: bytes) -> bool:
        try:
            self.request.sendall(wire.encode(self.server.secret, header, payload))
            return True
        except OSError:
            return False


class ShardServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: SliceStore, secret: bytes) -> None:
        if not secret:
            raise ValueError(f"a shard server needs a secret ({SECRET_ENV})")
        self.store, self.secret = store, secret
        super().__init__(address, _Handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="the artifact folder (RECSVC_ARTIFACT_DIR)")
    parser.add_argument("--shard", type=int, required=True)
    parser.add_argument("--of", type=int, required=True, dest="shards")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1, help="FAISS threads per search")
    args = parser.parse_args(argv)
    if not 0 <= args.shard < args.shards:
        parser.error("--shard must be in 0..--of - 1")
    secret = os.environ.get("RECSVC_ANN_SHARD_SECRET", "").encode()
    if not secret:
        parser.error(f"{SECRET_ENV} is not set")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    faiss.omp_set_num_threads(args.threads)
    with ShardServer((args.host, args.port), SliceStore(args.root, args.shard, args.shards), secret) as server:
        log.info("shard %d of %d listening on %s:%d", args.shard, args.shards, args.host, server.server_address[1])
        print(f"listening {server.server_address[1]}", flush=True)  # the port, for a launcher that asked for 0
        server.serve_forever()


if __name__ == "__main__":
    main()
