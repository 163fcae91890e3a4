"""The storefront snippet in a real browser: a shop's page, served from an origin of its own (a second tiny
HTTP server, under a strict Content-Security-Policy), loads recsvc.js from the running service with a
publishable key, shows the recommendations widget, and its impressions and a click land as events carrying
the answer's recommendation_id. Debian's headless Chromium through Debian's chromedriver, as the dashboard's
browser tests drive it."""

from __future__ import annotations

import functools
import http.server
import threading
import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from recs.models import Event
from tenants.api_keys import create_api_key
from tests.browser import chromium, console_problems, needs_chromium
from tests.recs.dashboard_data import make_shop
from tests.serving.trained import forget_served_state

pytestmark = needs_chromium

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>A shop</title>
<script src="{api}/static/storefront/recsvc.js" data-key="{key}" data-api="{api}" defer></script>
</head><body>
<h1>Teapots and more</h1>
<div id="recs" data-recsvc-widget data-k="3" data-title="You may like" data-link="{shop}/product.html?id={{id}}"></div>
</body></html>
"""


class _ShopHandler(http.server.SimpleHTTPRequestHandler):
    csp = ""

    def end_headers(self):
        # The strictest policy the snippet needs: its script and its API, nothing inline.
        self.send_header("Content-Security-Policy", self.csp)
        super().end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def shop_site(tmp_path, live_server):
    """A second origin (another port) serving the shop's pages."""
    handler = type("Handler", (_ShopHandler,), {
        "csp": f"default-src 'none'; script-src {live_server.url}; connect-src {live_server.url}"
    })
    server = http.server.ThreadingHTTPServer(("localhost", 0), functools.partial(handler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://localhost:{server.server_address[1]}"
    server.folder = tmp_path
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def _events(tenant, **filters) -> list[Event]:
    return list(Event.objects.for_tenant(tenant).filter(**filters))


def _wait_for(found, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.2)
    return found()


def test_the_snippet_shows_the_widget_and_a_click_lands_as_an_attributed_event(
    live_server, shop_site, browser, tenant, other_tenant
):
    make_shop(tenant, other_tenant)
    _, raw = create_api_key(tenant, name="storefront", scopes=["publishable"], allowed_origins=[shop_site.url])
    (shop_site.folder / "index.html").write_text(PAGE.format(api=live_server.url, key=raw, shop=shop_site.url))
    (shop_site.folder / "product.html").write_text("<!doctype html><title>Product</title><h1>Product</h1>")
    try:
        browser.get(f"{shop_site.url}/index.html")
        links = WebDriverWait(browser, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#recs a.recsvc-link")
            or d.find_element(By.ID, "recs").get_attribute("data-recsvc-error")
        )
        assert isinstance(links, list), f"the widget failed: {links}"
        titles = [link.text for link in links]
        assert len(titles) == 3 and all(titles), titles  # the shop's titles (popularity orders them)
        assert set(titles) <= {"Blue kettle", "Red mug", "Gift card", "Teapot"}
        recommendation_id = browser.find_element(By.ID, "recs").get_attribute("data-recsvc-recommendation-id")
        assert recommendation_id
        # One impression per shown item, attributed, from an anonymous visitor with a session.
        impressions = _wait_for(lambda: len(_events(tenant, event_type="impression")) >= 3 and
                                _events(tenant, event_type="impression"))
        assert {str(e.recommendation_id) for e in impressions} == {recommendation_id}
        assert len(impressions) == 3 and all(e.session_id for e in impressions)
        session = browser.execute_script("return window.localStorage.getItem('recsvc_session')")
        assert session and {e.session_id for e in impressions} == {session}

        product_id = links[0].get_attribute("data-recsvc-product")
        links[0].click()
        WebDriverWait(browser, 20).until(lambda d: "/product.html" in d.current_url)
        assert f"id={product_id}" in browser.current_url
        clicks = _wait_for(lambda: _events(tenant, event_type="click"))
        assert len(clicks) == 1, clicks
        click = clicks[0]
        assert str(click.recommendation_id) == recommendation_id
        assert click.product.external_id == product_id and click.session_id == session
        assert click.customer.external_id == f"anon-{session}"

        # The page ran under its strict policy without a refusal or a script error.
        assert console_problems(browser) == []
    finally:
        forget_served_state()


def test_the_snippet_on_an_origin_the_key_does_not_name_shows_nothing(
    live_server, shop_site, browser, tenant, other_tenant
):
    make_shop(tenant, other_tenant)
    _, raw = create_api_key(tenant, name="storefront", scopes=["publishable"],
                            allowed_origins=["https://shop.example"])
    (shop_site.folder / "index.html").write_text(PAGE.format(api=live_server.url, key=raw, shop=shop_site.url))
    try:
        browser.get(f"{shop_site.url}/index.html")
        error = WebDriverWait(browser, 30).until(
            lambda d: d.find_element(By.ID, "recs").get_attribute("data-recsvc-error"))
        assert error  # the browser refused the answer (no CORS for this origin)
        assert not browser.find_elements(By.CSS_SELECTOR, "#recs a.recsvc-link")
        assert not _events(tenant, event_type="impression")
    finally:
        forget_served_state()
