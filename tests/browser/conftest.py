"""The account portal in a real browser: Debian's Chromium, driven by Playwright, against a real
worker on a real broker (the integration suite's), with loopback receivers.

``playwright install`` cannot download browsers here, so the system Chromium is launched by its
path (``HOOKSTREAM_CHROMIUM``, default ``/usr/bin/chromium``; the Makefile installs it with
apt-get where it is missing). ``HOOKSTREAM_SCREENSHOTS=DIR`` saves a screenshot of each page
there (``docs/portal`` holds the ones the README shows).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.integration.conftest import (
    Pipeline,
    broker,
    engine,
    receiver,
    started_pipeline,
    with_own_client,
)

__all__ = ["broker", "engine", "receiver"]  # the integration suite's fixtures, shared

ADMIN_TOKEN = "portal-browser-admin-token"
PORTAL_SECRET = "portal-browser-link-key"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("HOOKSTREAM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(f"no Chromium at {path}: apt-get install -y chromium (make test does)")
    return path


@pytest.fixture(scope="module")
def portal_worker(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with started_pipeline(
        broker,
        tmp_path_factory.mktemp("portal"),
        HOOKSTREAM_ADMIN_TOKEN=ADMIN_TOKEN,
        HOOKSTREAM_PORTAL_SECRET=PORTAL_SECRET,
        HOOKSTREAM_RETRY_DELAYS="0.3,0.3,0.3",
    ) as pipeline:
        yield pipeline


class Portal:
    """The worker under test, its admin API, and portal links opened in a browser page."""

    def __init__(self, pipeline: Pipeline, session: aiohttp.ClientSession, browser: Browser):
        self.pipeline, self.session, self.browser = pipeline, session, browser
        self.base = f"http://127.0.0.1:{pipeline.worker.web_port}"

    async def admin(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with self.session.request(
            method, self.base + path, json=body, headers=headers
        ) as response:
            return response.status, await response.json()

    async def create_webhook(
        self, account: str, name: str, url: str, **fields: object
    ) -> dict[str, Any]:
        """A webhook of ``account`` made through the admin API (201, or the test fails)."""
        body = {"account_id": account, "name": name, "url": url, **fields}
        status, hook = await self.admin("POST", "/api/webhooks", body)
        assert status == 201 and isinstance(hook, dict), hook
        return hook

    async def link(self, account: str) -> str:
        status, answer = await self.admin(
            "POST", "/api/portal-links", {"account_id": account, "ttl_seconds": 600}
        )
        assert status == 201 and isinstance(answer, dict), answer
        url: str = answer["url"]
        return url

    async def open(self, account: str, width: int = 1280) -> Page:
        """A fresh browser context (its own session storage) on the account's portal link."""
        context = await self.browser.new_context(viewport={"width": width, "height": 900})
        page = await context.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda error: page.errors.append(error))  # type: ignore[attr-defined]
        await page.goto(await self.link(account))
        await page.get_by_role("heading", name="Your webhooks").wait_for()
        return page


@pytest.fixture
async def portal(portal_worker: Pipeline) -> AsyncIterator[Portal]:
    async with (
        with_own_client(portal_worker) as pipeline,
        async_playwright() as playwright,
        aiohttp.ClientSession() as session,
    ):
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield Portal(pipeline, session, browser)
        finally:
            await browser.close()


async def screenshot(page: Page, name: str) -> None:
    """Save the page as ``<HOOKSTREAM_SCREENSHOTS>/<name>.png`` when asked to."""
    directory = os.environ.get("HOOKSTREAM_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=True)
