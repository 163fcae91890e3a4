"""Scatter-gather over ANN shard servers (serving/shard_server.py): one search is sent to every shard at once,
and the top k of their answers, merged by score, is the answer.

A shard that does not answer within the timeout, refuses (wrong secret, unknown index) or answers something
that does not check is left out: the answer is then the merge of the shards that did answer, and `missing`
names the others with why (partial, never silently: the funnel shows it in `explain` and logs it). With no
shard answering the answer is empty and every shard is missing. Connections are kept per shard and reused; a
kept connection the server has closed meanwhile is retried once on a new one.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from serving import shard_protocol as wire


class ShardFailed(Exception):
    pass


@dataclass
class Hits:
    """Merged top k: scores and catalog rows (Q x k', -1 where fewer were found); the shards left out."""

    scores: np.ndarray
    ids: np.ndarray
    missing: list[dict[str, str]] = field(default_factory=list)
    shards: int = 0

    @property
    def degraded(self) -> bool:
        return bool(self.missing)


def merge_top_k(scores: list[np.ndarray], ids: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (highest score) of each row over every shard's answer (rows aligned)."""
    all_scores, all_ids = np.concatenate(scores, axis=1), np.concatenate(ids, axis=1)
    top = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(all_scores, top, axis=1), np.take_along_axis(all_ids, top, axis=1)


def _parse(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"shard address {address!r} is not host:port")
    return host.strip("[]"), int(port)


class ShardClient:
    """Searches the shard servers at `addresses` (host:port, slice i at addresses[i]) with `secret`."""

    def __init__(self, addresses: list[str], secret: bytes, timeout_s: float = 0.5) -> None:
        if not addresses:
            raise ValueError("no shard servers")
        if not secret:
            raise ValueError("shard servers need a shared secret (RECSVC_ANN_SHARD_SECRET)")
        self.addresses = list(addresses)
        self._targets = [_parse(a) for a in self.addresses]
        self.secret, self.timeout_s = secret, timeout_s
        self._idle: dict[int, list[socket.socket]] = {i: [] for i in range(len(addresses))}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=len(addresses), thread_name_prefix="ann-shard")

    def search(self, index: str, queries: np.ndarray, k: int) -> Hits:
        """Top k catalog rows of each query over every shard of `index` (a version folder, relative to the
        shard servers' root)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=wire.QUERY_DTYPE)
        n = len(q)
        answers, missing = self._gather(lambda i, deadline: self._ask(i, index, q, k, deadline))
        if not answers:
            return Hits(np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64), missing, len(self._targets))
        merged_scores, merged_ids = merge_top_k([a[0] for a in answers], [a[1] for a in answers], k)
        keep = merged_ids >= 0
        if not keep.all():  # fewer than k items in all: trim the padding columns every row shares
            width = int(keep.sum(axis=1).max())
            merged_scores, merged_ids = merged_scores[:, :width], merged_ids[:, :width]
        return Hits(merged_scores, merged_ids, missing, len(self._targets))

    def ping(self) -> list[dict[str, str]]:
        """The shards that do not answer a ping, with why (empty: all up)."""
        return self._gather(lambda i, deadline: self._exchange(i, {"op": "ping"}, b"", deadline))[1]

    def _gather(self, ask) -> tuple[list, list[dict[str, str]]]:
        """Every shard's answer to `ask(i, deadline)` in parallel: (answers, the shards that gave none)."""
        deadline = time.monotonic() + self.timeout_s
        futures = {self._pool.submit(ask, i, deadline): i for i in range(len(self._targets))}
        wait(futures, timeout=self.timeout_s)
        answers, missing = [], []
        for future, i in futures.items():
            if not future.done():
                missing.append({"shard": self.addresses[i], "error": f"no answer within {self.timeout_s:g} s"})
                continue
            try:
                answers.append(future.result())
            except (ShardFailed, OSError, wire.ProtocolError) as exc:
                missing.append({"shard": self.addresses[i], "error": str(exc) or type(exc).__name__})
        return answers, missing

    def _ask(self, i: int, index: str, q: np.ndarray, k: int, deadline: float) -> tuple[np.ndarray, np.ndarray]:
        n, d = q.shape
        header, payload = self._exchange(i, {"op": "search", "index": index, "n": n, "d": d, "k": k},
                                         q.tobytes(), deadline)
        if header.get("n") != n or header.get("k") != k:
            raise ShardFailed("answer of the wrong shape")
        size = n * k * wire.SCORE_DTYPE.itemsize
        scores = wire.array_of(payload[:size], wire.SCORE_DTYPE, (n, k))
        ids = wire.array_of(payload[size:], wire.ID_DTYPE, (n, k))
        return scores, ids

    def _exchange(self, i: int, header: dict, payload: bytes, deadline: float) -> tuple[dict, memoryview]:
        header["nonce"] = secrets.token_hex(8)
        header["ts"] = time.time()
        frame = wire.encode(self.secret, header, payload)
        for attempt in range(2):
            sock, reused = self._connection(i, deadline)
            try:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                sock.sendall(frame)
                answer, body = wire.read_frame(sock, self.secret)
            except wire.Unauthenticated as exc:
                sock.close()
                raise ShardFailed("answer not signed with our secret (the shard refused us, or the secrets "
                                  "differ)") from exc
            except (OSError, wire.ProtocolError):
                sock.close()
                if reused and attempt == 0 and time.monotonic() < deadline:
                    continue  # the server closed a kept connection (idle timeout, restart): once more, new
                raise
            if answer.get("nonce") != header["nonce"]:
                sock.close()
                raise ShardFailed("answer to another request")
            if not answer.get("ok"):
                sock.close()  # the server closes after a refusal
                raise ShardFailed(f"refused: {answer.get('error', 'no reason given')}")
            with self._lock:
                self._idle[i].append(sock)
            return answer, body
        raise ShardFailed("unreachable")

    def _connection(self, i: int, deadline: float) -> tuple[socket.socket, bool]:
        with self._lock:
            if self._idle[i]:
                return self._idle[i].pop(), True
        sock = socket.create_connection(self._targets[i], timeout=max(0.001, deadline - time.monotonic()))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, False

    def close(self) -> None:
        with self._lock:
            for kept in self._idle.values():
                for sock in kept:
                    sock.close()
                kept.clear()
        self._pool.shutdown(wait=False)
