"""The WSGI handler: Django's, except that the API's hottest routes skip the dashboard's middleware.

A cached recommendation or a single event is answered in a few hundred microseconds, and the middleware
of the server-rendered dashboard (static files, sessions, CSRF, session authentication, messages) was a
quarter of that in process (540 -> 400 us of CPU per cached answer), for nothing: these routes
authenticate by API key and answer JSON. They still run every other middleware of `settings.MIDDLEWARE`
(security headers and redirects, common, clickjacking), in its order, and Django's own request signals,
exception handling and error logging; only the classes below are left out. Every other path goes
through Django's handler unchanged.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable

from django.conf import settings
from django.core import signals
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler, get_path_info, get_script_name
from django.http import HttpRequest, HttpResponseBase
from django.urls import Resolver404, ResolverMatch, resolve, set_script_prefix, set_urlconf
from django.utils.log import log_response
from django.utils.module_loading import import_string

# Exact paths (PATH_INFO) served by the lean chain; their views take API keys only.
LEAN_PATHS = ("/v1/recommendations", "/v1/events")
# Paths of these shapes too (an id in the path, so resolved per request, as Django's handler would).
LEAN_PATTERNS = (re.compile(r"/v1/products/[^/]+/similar"),)
# Middleware that only the dashboard's pages need.
DASHBOARD_ONLY_MIDDLEWARE = frozenset({
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
})

Chain = Callable[[HttpRequest], HttpResponseBase]


class ServiceHandler(WSGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[str, ResolverMatch] | None = None
        self._lean_chain = self._chain([m for m in settings.MIDDLEWARE if m not in DASHBOARD_ONLY_MIDDLEWARE])

    def _chain(self, middleware: list[str]) -> Chain:
        """The middleware around the view, each layer guarded as Django's BaseHandler.load_middleware does."""
        handler = convert_exception_to_response(self._call_view)
        for path in reversed(middleware):
            handler = convert_exception_to_response(import_string(path)(handler))
        return handler

    def _call_view(self, request: HttpRequest) -> HttpResponseBase:
        match = request.resolver_match
        response = match.func(request, *match.args, **match.kwargs)
        if callable(getattr(response, "render", None)):  # DRF's Response renders late, as in _get_response
            response = response.render()
        return response

    def _lean_route(self, path: str) -> ResolverMatch | None:
        if self._routes is None:  # resolved once, after the URLconf can be imported
            routes = {}
            for lean in LEAN_PATHS:
                with contextlib.suppress(Resolver404):  # a URLconf without it serves it the usual way
                    routes[lean] = resolve(lean)
            self._routes = routes
        match = self._routes.get(path)
        if match is None and any(pattern.fullmatch(path) for pattern in LEAN_PATTERNS):
            with contextlib.suppress(Resolver404):
                match = resolve(path)
        return match

    def __call__(self, environ, start_response):
        match = self._lean_route(get_path_info(environ))  # decoded as the request's path_info will be
        if match is None:
            return super().__call__(environ, start_response)
        # As WSGIHandler.__call__ and BaseHandler.get_response, with the lean chain.
        set_script_prefix(get_script_name(environ))
        signals.request_started.send(sender=self.__class__, environ=environ)
        request = self.request_class(environ)
        request.resolver_match = match
        set_urlconf(settings.ROOT_URLCONF)
        response = self._lean_chain(request)
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        response._handler_class = self.__class__
        start_response(f"{response.status_code} {response.reason_phrase}", [
            *response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values()),
        ])
        return response
