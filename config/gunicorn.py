"""The web server as deployed: `gunicorn -c config/gunicorn.py` (`make demo` and the benchmarks use it).

Sync workers, one more than the cores. A sync worker serves one request at a time, in its own process:
while a request waits for PostgreSQL or Redis, the kernel runs another worker and wakes this one as
soon as its answer arrives. Threads of one worker (gthread) share one GIL instead: a thread whose query
has returned waits up to the interpreter's switch interval (5 ms) for another request's Python to let
go, several times per request, and a keep-alive connection stays in the worker that accepted it however
busy that worker is, which shows in the tail latency of uncached answers (docs/adr/, docs/benchmarks.md).

A sync worker closes the connection after each answer and is tied up by a client that sends or reads
slowly, so in production it sits behind a buffering proxy, which holds the clients' keep-alive
connections: deploy/nginx/recsvc.conf.template (or a cloud load balancer that buffers). More workers
than cores + 1 only pay when PostgreSQL and Redis run on other machines (a request then waits longer):
`RECSVC_WEB_WORKERS`.

The embedded default (no `REDIS_URL`: `make demo` on a fresh machine) keeps Django's cache in each
process's memory: customers' and rules' generations, cached answers, rate-limit counts, the active
version. Several processes would each keep their own, so an event posted through one could leave another
serving the answer it made stale for the cache's TTL, and an erasure could not reach the others' copies.
There the server is one process (`gthread`, its threads serving concurrent requests), which keeps that
state coherent; `RECSVC_WEB_WORKERS` still overrides it.
"""

import os

from config.env import env_int, env_str

wsgi_app = "config.wsgi:application"
bind = env_str("RECSVC_WEB_BIND", "127.0.0.1:8000")
if env_str("REDIS_URL"):  # the cache is shared between processes (config/settings.py)
    worker_class = "sync"
    workers = env_int("RECSVC_WEB_WORKERS", (os.cpu_count() or 1) + 1, minimum=1, maximum=256)
else:  # the embedded default's per-process cache: one process (see above)
    worker_class = "gthread"
    workers = env_int("RECSVC_WEB_WORKERS", 1, minimum=1, maximum=256)
    threads = 4
backlog = 2048
# A worker silent this long is restarted. A sync worker is silent for the whole of its request: a bulk
# request of 10,000 events or a cold model load takes seconds, but an import upload (RECSVC_MAX_IMPORT_BYTES,
# 20 GiB) is read and written to disk in the request, about 300 MB/s here (2 GB in 6-7.6 s), so about 70 s
# at the limit. Slower disks: raise it.
timeout = env_int("RECSVC_WEB_TIMEOUT", 120, minimum=10, maximum=3600)
