"""The web server as deployed: `gunicorn -c config/gunicorn.py` (`make demo` and the benchmarks use it).

gthread workers, one per core, four threads each: a request spends much of its time waiting on
PostgreSQL and Redis, and another thread of the worker uses the core meanwhile. On the 2-core machine
of the README's benchmarks, 2 x 4 answered uncached recommendations faster than 8 x 1 and 2 x 1.
Keep-alive connections stay open 30 s, as a shop's backend holds a pool of them; a keep-alive
connection is served by the worker that accepted it for its whole life (README, *Benchmarks*).
"""

import os

from config.env import env_int, env_str

wsgi_app = "config.wsgi:application"
bind = env_str("RECSVC_WEB_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = env_int("RECSVC_WEB_WORKERS", os.cpu_count() or 1, minimum=1, maximum=256)
threads = env_int("RECSVC_WEB_THREADS", 4, minimum=1, maximum=64)
keepalive = 30
backlog = 2048
# A bulk request of 10,000 events or a cold model load takes seconds, never minutes.
timeout = 120
