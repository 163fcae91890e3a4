"""The customer and product pages and the rules page's preview in a real browser: Debian's headless Chromium
driven by Selenium through Debian's chromedriver, signed in with a real session, cut off from every host but
the test server. The pages run under the dashboard's Content-Security-Policy (scripts from 'self' only):
any refusal or script error shows in the browser's console, which each test reads."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from recs.rules import create_rule
from tests.browser import console_problems, fits_the_window, needs_chromium
from tests.recs.dashboard_data import make_shop
from tests.serving.trained import forget_served_state

pytestmark = needs_chromium


@pytest.fixture
def shop(tenant, other_tenant):
    yield make_shop(tenant, other_tenant)
    forget_served_state()


def rows(driver) -> list[str]:
    found = driver.find_elements(By.CSS_SELECTOR, "#preview-answer tbody tr[data-id]")
    return [row.get_attribute("data-id") for row in found]


def test_customer_page_and_a_product_page_from_its_preview(browser, shop):
    browser.get(f"{browser.base}/customers/{shop['ann'].pk}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Customer ann"
    assert rows(browser) == ["gift", "kettle", "mug", "teapot"]
    events = browser.find_element(By.ID, "recent-events").text
    assert "Teapot" in events and "Oct 16, 2016, 14:05:09" in events
    assert "No model is serving yet" in browser.find_element(By.ID, "preview").text
    assert browser.execute_script("return document.querySelectorAll('script:not([src])').length") == 0
    assert fits_the_window(browser)
    assert console_problems(browser) == []

    browser.find_element(By.CSS_SELECTOR, '#preview-answer tr[data-id="kettle"] a.cell-title').click()
    assert browser.find_element(By.TAG_NAME, "h1").text == "Blue kettle"
    assert browser.current_url == f"{browser.base}/products/{shop['kettle'].pk}"
    assert "Similar products" in browser.find_element(By.ID, "preview").text
    assert rows(browser) == ["gift", "mug", "teapot"]  # never the kettle itself
    assert fits_the_window(browser)
    assert console_problems(browser) == []


def test_rules_page_preview_before_and_after_a_rule(browser, shop, tenant):
    browser.get(f"{browser.base}/rules")
    field = browser.find_element(By.ID, "preview-customer")
    field.send_keys("ann")
    field.submit()
    assert rows(browser) == ["gift", "kettle", "mug", "teapot"]
    assert "Customer ann" in browser.find_element(By.ID, "preview").text

    # A rule saved elsewhere (the form calls the same function); the page, opened again, marks the change.
    create_rule(tenant, {"name": "No gift cards", "kind": "exclude_categories",
                         "params": {"categories": ["Gift cards"]}})
    browser.get(f"{browser.base}/rules")
    assert rows(browser) == ["kettle", "mug", "teapot"]
    changes = browser.find_element(By.ID, "preview-changes").text
    assert "Changed since the previous preview" in changes and "No longer recommended: Gift card" in changes
    assert "No gift cards: 1 candidate" in browser.find_element(By.ID, "preview-filters").text
    assert fits_the_window(browser)
    assert console_problems(browser) == []
