import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from django.conf import settings  # noqa: E402
from django.urls import get_resolver  # noqa: E402

_patterns = get_resolver().url_patterns  # imports every view (and serving, FAISS, numpy) before what follows

# A web process scores one request's few hundred candidates at a time, next to other workers on the same
# cores: a library's own thread pool only adds contention there, and OpenBLAS's idle threads spin. That
# holds for every pool a request reaches: torch's intra-op threads, and the OpenMP and OpenBLAS runtimes
# that numpy and FAISS bring (each sized to the cores by default). threadpoolctl sets those it finds
# loaded, hence after the imports above.
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

torch.set_num_threads(settings.RECSVC_SERVING_COMPUTE_THREADS)
threadpool_limits(settings.RECSVC_SERVING_COMPUTE_THREADS)

# Every object alive now (Django, DRF, torch, FAISS and the project's modules) is moved out of the cyclic
# garbage collector's reach. They live as long as the process, yet each full collection walked them all,
# with every request of the worker stalled behind it. gc.freeze, as Instagram's Django fleet does;
# refcounting still frees these objects, only the cycle detector skips them.
import gc  # noqa: E402

gc.collect()
gc.freeze()
