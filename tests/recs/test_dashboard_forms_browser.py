"""The dashboard's forms in a real browser (Debian's headless Chromium through Selenium, as in
test_dashboard_browser.py, whose signed-in `browser` fixture and console reader these tests reuse): the
settings form's select shows its whole text, rules are made with fields, imports upload with progress and
store connections are created from their page. Each test reads the console for policy refusals."""

from __future__ import annotations

import json
import os
import re

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from recs.models import Boost, Event, ImportJob, IntegrationConnection, Rule
from tests.browser import console_problems, fits_the_window, needs_chromium, press
from tests.factories import ProductFactory

pytestmark = needs_chromium
SHOTS = os.environ.get("RECSVC_SCREENSHOTS")  # a folder to keep the screenshots in, to look at them


def _shot(driver, element, name: str, tmp_path) -> None:
    folder = SHOTS or str(tmp_path)
    element.screenshot(os.path.join(folder, f"{name}.png"))


def cut_off(driver, select) -> list[tuple[str, float, float]]:
    """The options of a <select> whose text, once chosen, would not fit inside it: (text, width, room)."""
    return driver.execute_script("""
        const select = arguments[0], style = getComputedStyle(select);
        const canvas = document.createElement('canvas').getContext('2d');
        canvas.font = style.font;
        const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        return Array.from(select.options).map(o => [o.text, canvas.measureText(o.text).width, room])
                    .filter(([text, width, room]) => width > room);""", select)


def test_the_consumed_select_shows_its_whole_text(browser, tmp_path):
    browser.get(f"{browser.base}/rules")
    select = browser.find_element(By.ID, "id_consumed")
    _shot(browser, browser.find_element(By.ID, "settings"), "settings", tmp_path)
    assert cut_off(browser, select) == []
    assert fits_the_window(browser)
    assert console_problems(browser) == []


def _submit(driver, form_id: str = "rule-form") -> None:
    """Press the form's submit button and wait for the page it leads to."""
    press(driver, driver.find_element(By.ID, form_id).find_element(By.CSS_SELECTOR, "button[type=submit]"))


def _visible(driver, css: str) -> bool:
    return driver.find_element(By.CSS_SELECTOR, css).is_displayed()


def test_a_rule_is_made_with_fields_not_json(browser, tenant, tmp_path):
    for path in (["Kitchen", "Mugs"], ["Kitchen", "Teapots"], ["Gift cards"]):
        ProductFactory(tenant=tenant, category_path=path, attributes={"adult": False, "size": 42})
    browser.get(f"{browser.base}/rules/new")
    assert browser.find_elements(By.CSS_SELECTOR, "textarea[name=params], textarea[name=conditions]") == []
    Select(browser.find_element(By.ID, "id_kind")).select_by_value("exclude_categories")
    assert _visible(browser, "#categories") and not _visible(browser, "#id_price_min")
    browser.find_element(By.ID, "id_name").send_keys("No gift cards")
    browser.find_element(By.CSS_SELECTOR, '#categories input[value="Gift cards"]').click()
    _shot(browser, browser.find_element(By.ID, "rule-form"), "rule-categories", tmp_path)
    _submit(browser)
    assert "Rule “No gift cards” created." in browser.find_element(By.TAG_NAME, "main").text
    assert Rule.objects.for_tenant(tenant).get().params == {"categories": ["Gift cards"]}

    browser.get(f"{browser.base}/rules/new")
    Select(browser.find_element(By.ID, "id_kind")).select_by_value("attribute")
    assert not _visible(browser, "#categories") and _visible(browser, "#id_conditions")
    browser.find_element(By.ID, "id_name").send_keys("Adults only out")
    rows = browser.find_elements(By.CSS_SELECTOR, "[data-cond-row]")
    assert len(rows) == 1 and not rows[0].find_element(By.CSS_SELECTOR, "[data-part=key]").is_displayed()
    Select(rows[0].find_element(By.CSS_SELECTOR, "[data-part=field]")).select_by_value("attributes")
    rows[0].find_element(By.CSS_SELECTOR, "[data-part=key]").send_keys("adult")
    rows[0].find_element(By.CSS_SELECTOR, "[data-part=value]").send_keys("true")
    browser.find_element(By.CSS_SELECTOR, "[data-add-row]").click()
    second = browser.find_elements(By.CSS_SELECTOR, "[data-cond-row]")[1]
    Select(second.find_element(By.CSS_SELECTOR, "[data-part=field]")).select_by_value("price")
    Select(second.find_element(By.CSS_SELECTOR, "[data-part=op]")).select_by_value("gte")
    second.find_element(By.CSS_SELECTOR, "[data-part=value]").send_keys("100")
    _shot(browser, browser.find_element(By.ID, "rule-form"), "rule-conditions", tmp_path)
    for select in browser.find_elements(By.CSS_SELECTOR, "[data-cond-row] select"):
        assert cut_off(browser, select) == []
    assert fits_the_window(browser)
    _submit(browser)
    assert "Rule “Adults only out” created." in browser.find_element(By.TAG_NAME, "main").text
    assert Rule.objects.for_tenant(tenant).get(name="Adults only out").params == {"mode": "exclude", "conditions": [
        {"field": "attributes.adult", "op": "eq", "value": True}, {"field": "price", "op": "gte", "value": 100}]}
    assert console_problems(browser) == []


def test_a_validator_error_comes_back_on_the_row(browser, tenant):
    browser.get(f"{browser.base}/boosts/new")
    browser.find_element(By.ID, "id_name").send_keys("Cheap")
    row = browser.find_element(By.CSS_SELECTOR, "[data-cond-row]")
    Select(row.find_element(By.CSS_SELECTOR, "[data-part=field]")).select_by_value("brand")
    Select(row.find_element(By.CSS_SELECTOR, "[data-part=op]")).select_by_value("lt")
    row.find_element(By.CSS_SELECTOR, "[data-part=value]").send_keys("5")
    browser.find_element(By.ID, "id_factor").send_keys("2")
    _submit(browser)
    assert "Condition 1, operator: 'lt' applies only to price" in browser.find_element(By.ID, "rule-form").text
    assert not Boost.objects.for_tenant(tenant).exists()
    # The refused form comes back with status 400, which the console reports; nothing else.
    assert [p for p in console_problems(browser) if "status of 400" not in p] == []


@pytest.mark.celery_worker
def test_an_upload_on_the_imports_page_shows_its_progress_until_done(celery_worker, browser, tenant, tmp_path,
                                                                      settings):
    settings.RECSVC_IMPORT_DIR = tmp_path / "imports"
    ProductFactory(tenant=tenant, external_id="p1")
    lines = [json.dumps({"type": "view", "customer_id": f"c{i}", "product_id": "p1", "event_id": f"e{i}",
                         "timestamp": "2024-05-01T10:00:00Z"}) for i in range(500)]
    lines.append('{"broken": ')
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n")

    browser.get(f"{browser.base}/imports")
    Select(browser.find_element(By.ID, "id_kind")).select_by_value("events")
    browser.find_element(By.ID, "id_file").send_keys(str(path))
    browser.find_element(By.ID, "upload-submit").click()
    status = browser.find_element(By.ID, "upload-text")
    WebDriverWait(browser, 60).until(lambda _: re.match(r"Import #\d+ (succeeded|failed)", status.text))
    job = ImportJob.objects.for_tenant(tenant).get()
    assert status.text == f"Import #{job.pk} succeeded: 500 rows stored, 0 already there, 1 failed."
    assert browser.find_element(By.CSS_SELECTOR, "#upload-status [role=progressbar]").get_attribute(
        "aria-valuenow") == "100"
    assert browser.current_url == f"{browser.base}/imports"  # the page never left: the script uploaded
    _shot(browser, browser.find_element(By.ID, "upload"), "imports-upload", tmp_path)
    assert Event.objects.for_tenant(tenant).count() == 500
    assert fits_the_window(browser)
    assert console_problems(browser) == []

    browser.get(f"{browser.base}/imports")
    row = browser.find_element(By.ID, f"import-{job.pk}")
    assert "Succeeded" in row.text and "500" in row.text


def test_a_store_connection_from_its_page_shows_the_url_to_paste(browser, tenant, tmp_path):
    browser.get(f"{browser.base}/integrations")
    Select(browser.find_element(By.ID, "id_platform")).select_by_value("woocommerce")
    browser.find_element(By.ID, "id_shop_domain").send_keys("https://Shop.Example.com/")
    browser.find_element(By.ID, "id_secret").send_keys("wc-webhook-secret-4f9a1c")
    _submit(browser, "connection-form")
    connection = IntegrationConnection.objects.for_tenant(tenant).get()
    assert connection.shop_domain == "https://shop.example.com"
    url = browser.find_element(By.ID, "webhook-url")
    assert url.get_attribute("value") == f"{browser.base}/webhooks/woocommerce/{connection.uuid}"
    assert "order.created" in browser.find_element(By.ID, "created").text
    browser.find_element(By.CSS_SELECTOR, "[data-copy=webhook-url]").click()
    WebDriverWait(browser, 10).until(lambda _: browser.find_element(By.CSS_SELECTOR, "[data-copied]").text)
    assert browser.execute_script("return window.getSelection().toString()") == url.get_attribute("value")
    assert url.get_attribute("value") in browser.find_element(By.ID, "connections").text
    _shot(browser, browser.find_element(By.ID, "created"), "connection-created", tmp_path)
    assert fits_the_window(browser)
    assert console_problems(browser) == []
