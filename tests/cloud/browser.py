"""Headless Chromium from Debian (`chromium`, `chromium-driver`) driven by selenium, for the dashboard's
browser test and benchmark. `why_not()` says what is missing, for a skip that names it."""

from __future__ import annotations

import shutil
from typing import Any

CHROMIUM, DRIVER = "chromium", "chromedriver"


def why_not() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: .venv/bin/python -m pip install selenium (the dev extra has it)"
    missing = [name for name in (CHROMIUM, DRIVER) if not shutil.which(name)]
    if missing:
        return f"{' and '.join(missing)} not on PATH: apt-get install chromium chromium-driver (./dev.sh step 1b)"
    return None


def chromium(width: int = 1280, height: int = 900) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which(CHROMIUM) or CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which(DRIVER) or DRIVER), options=options)


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def log_in(driver: Any, base: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/login")
    field = driver.find_element(By.ID, "token")
    field.send_keys(token)
    field.submit()
