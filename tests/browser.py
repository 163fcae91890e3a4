"""Headless Chromium for the browser tests: Debian's chromium and chromedriver, driven by selenium, cut off
from every host but the test server; a session signed in through a real login's cookie; the console's
complaints."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

# The marks of a browser test: a transactional database (the live server's own connection sees the rows),
# cheap password hashing, skipped without Chromium.
needs_chromium = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fast_passwords"),
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"),
]

_ARGUMENTS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,900",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",
)


def chromium() -> webdriver.Chrome:
    """A headless Chromium that reaches localhost only and keeps the console's messages."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in _ARGUMENTS:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


def signed_in(live_server, user) -> webdriver.Chrome:
    """Chromium signed in as `user`: the session of a real login, set as the browser's cookie. `driver.base`
    is the server's address."""
    driver = chromium()
    client = Client()
    client.force_login(user)
    driver.get(f"{live_server.url}/login")  # a page of the server's origin, to set its cookie on
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    driver.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": session,
                       "domain": urlsplit(live_server.url).hostname, "path": "/"})
    driver.base = live_server.url
    return driver


def console_problems(driver) -> list[str]:
    """Console messages of the page at warning level or worse: a policy refusal, a script error, a failed load
    (but the browser's own request for /favicon.ico, which the dashboard does not serve)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] in ("SEVERE", "WARNING") and "/favicon.ico" not in entry["message"]]


def fits_the_window(driver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def press(driver, button) -> None:
    """Click a button that leads to another page and wait for it: the pressed button gone from the document
    (Chromium may say so with "does not belong to the document" rather than "stale") and the next page
    loaded, without the mark this page's window carried. A read right after cannot meet the old page."""
    driver.execute_script("window.recsvcLeaving = true")
    button.click()

    def gone(element) -> bool:
        try:
            element.is_enabled()
        except WebDriverException:
            return True
        return False

    arrived = "return document.readyState === 'complete' && !window.recsvcLeaving"
    WebDriverWait(driver, 20, ignored_exceptions=(WebDriverException,)).until(
        lambda d: gone(button) and d.execute_script(arrived)
    )
