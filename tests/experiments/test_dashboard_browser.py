"""The Experiments pages in a real browser (Debian's headless Chromium through Selenium, as
tests/recs/test_dashboard_browser.py drives it): an owner creates an experiment through the form, starts it,
and sees its results page with the chart under the dashboard's Content-Security-Policy, with no console
problem. The page's screenshot is kept in RECSVC_SCREENSHOTS (else the test's temporary folder)."""

from __future__ import annotations

import datetime as dt
import os

from django.utils import timezone
from selenium.webdriver.common.by import By

from experiments.models import Experiment, StatsSnapshot
from tests.browser import console_problems, needs_chromium, press
from tests.experiments._fixtures import stats_with

SHOTS = os.environ.get("RECSVC_SCREENSHOTS")

pytestmark = needs_chromium


def test_create_an_experiment_start_it_and_see_its_results(browser, tenant, tmp_path):
    browser.get(f"{browser.base}/experiments")
    browser.find_element(By.ID, "new-experiment").click()
    browser.find_element(By.ID, "id_name").send_keys("Ranker off")
    press(browser, browser.find_element(By.ID, "create-experiment"))
    assert "/experiments/new" not in browser.current_url
    assert browser.find_element(By.TAG_NAME, "h1").text == "Ranker off", browser.page_source[:3000]
    press(browser, browser.find_element(By.ID, "start"))
    assert "Running" in browser.find_element(By.ID, "experiment-actions").find_element(By.XPATH, "..").text

    experiment = Experiment.dangerously_unscoped.get(tenant=tenant, name="Ranker off")
    day = dt.date(2024, 3, 1)
    for d in range(3):
        n = 10_000 * (d + 1)
        for variant, mean in (("control", 1.0), ("treatment", 1.1)):
            stats = stats_with(mean, 1.0, n).as_dict()
            StatsSnapshot.dangerously_unscoped.create(
                tenant=tenant, experiment=experiment, variant=variant, day=day + dt.timedelta(days=d), units=n,
                stats={"revenue_per_1000": stats, "click_through": stats, "empty_answers": stats},
                computed_at=timezone.now())
    browser.get(f"{browser.base}/experiments/{experiment.pk}")

    chart = browser.find_element(By.CSS_SELECTOR, "#lift-chart svg.chart")
    assert chart.size["width"] > 300 and len(chart.find_elements(By.CSS_SELECTOR, "path.line")) == 3
    assert "treatment raises revenue per 1,000 recommendations by 10.0%" in browser.find_element(
        By.ID, "decision").text
    assert console_problems(browser) == []
    folder = SHOTS or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    browser.save_screenshot(os.path.join(folder, "experiment_results.png"))
