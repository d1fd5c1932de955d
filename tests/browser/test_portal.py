"""The account portal end to end: a portal link in headless Chromium, a real worker and broker,
loopback receivers, signatures verified with ``standardwebhooks``.

Waits are Playwright's (a condition with a deadline) or :func:`wait_until`; never a sleep.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from playwright.async_api import Page, expect
from standardwebhooks import Webhook

from tests.browser.conftest import Portal, screenshot
from tests.integration.harness import Receiver, unique, wait_until
from tests.seed_bodies import input_event

SECRET = "whsec_" + base64.b64encode(b"portal-browser-test-signing-key!").decode()
PASSWORD = "portal-basic-auth-password"
XSS = "<img src=x onerror=alert(1)>"


async def _produce(portal: Portal, account: str, name: str = "message sent") -> None:
    catalog = portal.pipeline.catalog
    topic = catalog.events_contacts if name.startswith("contact") else catalog.events_messages
    await portal.pipeline.kafka.send_json(topic, input_event(name, account), key=account)


async def _row(page: Page, name: str) -> Any:
    # By element, not role: at 390 px the table is laid out as cards (rows lose the role).
    row = page.locator("tbody tr").filter(has=page.get_by_text(name, exact=True))
    await expect(row).to_have_count(1)
    return row


async def _refresh_until(page: Page, text: str) -> None:
    """Press "Refresh" on the delivery log until ``text`` shows (the log is read on demand)."""

    async def shown() -> bool:
        if await page.get_by_text(text).count():
            return True
        await page.get_by_role("button", name="Refresh").click()
        await page.get_by_role("heading", name=re.compile("^Delivery log")).wait_for()
        return False

    await wait_until(shown, 60, f"{text!r} in the delivery log", interval=0.5)


async def _every_field_labelled(page: Page) -> None:
    unlabelled = await page.evaluate(
        """() => [...document.querySelectorAll('main input, main select, main textarea')]
            .filter((e) => !e.closest('.hidden') && e.labels.length === 0 && !e.ariaLabel)
            .map((e) => e.outerHTML)"""
    )
    assert unlabelled == []


async def test_create_test_save_and_see_the_delivery_in_the_log(
    portal: Portal, receiver: Receiver
) -> None:
    account = unique("acct_")
    page = await portal.open(account)
    await screenshot(page, "01-webhooks-empty")
    await page.get_by_role("button", name="+ Webhook").click()
    await page.get_by_label("Name", exact=True).fill("CRM sync")
    await page.get_by_label("Payload URL", exact=True).fill(receiver.url("/crm"))
    await page.get_by_label("message sent", exact=True).check()
    await page.get_by_label("contact subscribes", exact=True).check()
    await page.get_by_role("button", name="Generate").click()
    secret = await page.get_by_label("Secret", exact=True).input_value()
    assert secret.startswith("whsec_")
    save = page.get_by_role("button", name="Save")
    await expect(save).to_be_disabled()  # a new webhook is tested before it is saved
    await _every_field_labelled(page)
    await screenshot(page, "02-webhook-form")

    # Test, with an edited sample: a real request, signed with the secret being created.
    await page.get_by_role("button", name="Test", exact=True).click()
    sample = page.get_by_label("Sample data")
    edited = (await sample.input_value()).replace('"subject"', '"subject_was"', 1)
    await sample.fill(edited)
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_text("Success", exact=True)).to_be_visible()
    await expect(page.get_by_text("Status: 200")).to_be_visible()
    await screenshot(page, "03-test-result")
    [tested] = receiver.at("/crm")
    assert Webhook(secret).verify(tested.body, tested.headers)["event"] == "message sent"
    await expect(save).to_be_enabled()

    # Changing the URL asks for a new test; the same URL again is the tested one.
    url = page.get_by_label("Payload URL", exact=True)
    await url.fill(receiver.url("/elsewhere"))
    await expect(save).to_be_disabled()
    await expect(page.get_by_text("Test the webhook before saving it.")).to_be_visible()
    await url.fill(receiver.url("/crm"))
    await expect(save).to_be_enabled()
    await save.click()
    await expect(page.get_by_role("heading", name="Webhook created")).to_be_visible()
    await expect(page.get_by_text(secret, exact=True)).to_be_visible()  # shown this once
    await page.get_by_role("button", name="Done").click()
    row = await _row(page, "CRM sync")
    await expect(row.get_by_role("cell", name="message sent, contact subscribes")).to_be_visible()
    assert secret not in await page.content()
    await screenshot(page, "04-webhooks")

    # A real event through the pipeline, then its attempt in the delivery log.
    await _produce(portal, account)
    await receiver.wait_for("/crm", 2)
    await row.get_by_role("button", name="Delivery log").click()
    await _refresh_until(page, "200 (delivered)")
    await screenshot(page, "05-delivery-log")
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_dead_letter_is_replayed_from_the_page_and_delivered(
    portal: Portal, receiver: Receiver
) -> None:
    account = unique("acct_")
    hook = await portal.create_webhook(account, "Flaky", receiver.url("/flaky"), max_retries=1)
    receiver.script("/flaky", [500, 500])  # the first try and its one retry fail
    page = await portal.open(account)
    await _produce(portal, account)
    await portal.pipeline.kafka.read(
        portal.pipeline.catalog.deliveries_failed, lambda v: v["job"]["webhook_id"] == hook["id"]
    )
    await (await _row(page, "Flaky")).get_by_role("button", name="Delivery log").click()
    failed = page.get_by_role("row").filter(has=page.get_by_role("button", name="Replay"))
    await _refresh_until(page, "gave up after 2 attempts")
    await expect(failed).to_have_count(1)
    await screenshot(page, "06-failed-deliveries")
    await failed.get_by_role("button", name="Replay").click()
    await expect(page.get_by_role("status")).to_have_text("Replayed 1 delivery.")
    await receiver.wait_for("/flaky", 3)
    await _refresh_until(page, "200 (delivered)")
    assert [r.headers["webhook-id"] for r in receiver.at("/flaky")] == [
        receiver.at("/flaky")[0].headers["webhook-id"]
    ] * 3  # the same delivery id, replayed
    # Delivered after its replay: no longer a failure, neither in the log nor in the list.
    await _refresh_until(page, "No failed delivery.")
    await expect(failed).to_have_count(0)
    await page.get_by_role("button", name="Back to webhooks").click()
    row = await _row(page, "Flaky")
    await expect(row.locator("td[data-label='Failures (24 h)']")).to_have_text("0")


async def test_test_connection_of_a_saved_webhook_shows_the_error(
    portal: Portal, receiver: Receiver
) -> None:
    account = unique("acct_")
    await portal.create_webhook(account, "Down", receiver.url("/down"))
    receiver.script("/down", [503])
    page = await portal.open(account)
    await (await _row(page, "Down")).get_by_role("button", name="Test connection").click()
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_text("Failed", exact=True)).to_be_visible()
    await expect(page.get_by_text("Status: 503")).to_be_visible()


async def test_errors_from_the_api_appear_next_to_their_field(
    portal: Portal, receiver: Receiver
) -> None:
    account = unique("acct_")
    await portal.create_webhook(account, "Edit me", receiver.url("/e"))
    page = await portal.open(account)
    await (await _row(page, "Edit me")).get_by_role("button", name="Edit").click()
    await page.get_by_text("Advanced", exact=True).click()  # the form's advanced settings
    await page.get_by_label("Max retries").fill("11")
    await page.get_by_role("button", name="Save").click()
    error = page.locator(f"#{await page.get_by_label('Max retries').get_attribute('id')}-error")
    await expect(error).to_contain_text("less than or equal to 10")


async def test_a_link_reaches_only_its_own_account(portal: Portal, receiver: Receiver) -> None:
    mine, theirs = unique("acct_"), unique("acct_")
    other = await portal.create_webhook(theirs, "Theirs", receiver.url("/t"))
    page = await portal.open(mine)
    await expect(page.get_by_text("No webhook yet.", exact=False)).to_be_visible()
    await page.evaluate(f"location.hash = 'edit/{other['id']}'")
    await expect(page.get_by_role("alert")).to_contain_text("not found")
    await page.evaluate(f"location.hash = 'log/{other['id']}'")
    await expect(page.get_by_role("alert")).to_contain_text("not found")
    assert "Theirs" not in await page.content()


async def test_account_text_is_shown_as_text_and_secrets_never_reach_the_page(
    portal: Portal, receiver: Receiver
) -> None:
    account = unique("acct_")
    await portal.create_webhook(
        account,
        XSS,
        receiver.url("/x"),
        secret=SECRET,
        auth={"type": "basic", "username": "crm", "password": PASSWORD},
    )
    dialogs: list[str] = []
    page = await portal.open(account, width=390)
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    row = await _row(page, XSS)  # the name, as those characters
    assert await page.locator("main img").count() == 0
    # 390 px wide: the page fits, no sideways scrolling.
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await screenshot(page, "07-webhooks-390px")
    await row.get_by_role("button", name="Edit").click()
    await expect(page.get_by_label("Username")).to_have_value("crm")
    await expect(page.get_by_label("Password")).to_have_value("")
    await expect(page.get_by_label("Secret", exact=True)).to_have_value("")
    basic = base64.b64encode(f"crm:{PASSWORD}".encode()).decode()
    for text in (await page.content(), await page.evaluate("JSON.stringify(sessionStorage)")):
        for secret in (SECRET, SECRET.removeprefix("whsec_"), PASSWORD, basic):
            assert secret not in text
    assert dialogs == [] and page.errors == []  # type: ignore[attr-defined]


async def test_keyboard_alone_creates_a_webhook(portal: Portal, receiver: Receiver) -> None:
    account = unique("acct_")
    page = await portal.open(account)
    await page.get_by_role("button", name="+ Webhook").focus()
    await page.keyboard.press("Enter")
    await page.get_by_label("Name", exact=True).wait_for()
    await page.get_by_label("Name", exact=True).focus()
    await page.keyboard.type("Typed")
    await page.keyboard.press("Tab")
    await page.keyboard.type(receiver.url("/kb"))
    await page.get_by_role("button", name="Test", exact=True).focus()
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Send").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_text("Success", exact=True)).to_be_visible()
    await page.get_by_role("button", name="Save").focus()
    await page.keyboard.press("Enter")
    await _row(page, "Typed")


async def test_a_custom_payload_is_built_from_readable_fields_with_a_live_preview(
    portal: Portal, receiver: Receiver
) -> None:
    account = unique("acct_")
    page = await portal.open(account)
    await page.get_by_role("button", name="+ Webhook").click()
    await page.get_by_label("Name", exact=True).fill("Mapped")
    await page.get_by_label("Payload URL", exact=True).fill(receiver.url("/mapped"))
    await page.get_by_label("contact subscribes", exact=True).check()
    await page.get_by_label("Custom payload").check()
    rows = page.locator(".mapping")
    await expect(rows).to_have_count(1)
    await rows.nth(0).get_by_label("Field name").fill("email")
    await rows.nth(0).get_by_label("Field mapping").select_option(label="Contact Email")
    await page.get_by_role("button", name="Add field").click()
    await rows.nth(1).get_by_label("Field name").fill("source")
    await rows.nth(1).get_by_label("Field mapping").select_option(label="Custom value")
    await rows.nth(1).get_by_label("Custom value").fill("newsletter")
    await page.get_by_role("button", name="Add field").click()
    await rows.nth(2).get_by_role("button", name="Remove field").click()
    await expect(rows).to_have_count(2)
    preview = page.locator("pre").first
    await expect(preview).to_contain_text('"source": "newsletter"')
    await expect(preview).to_contain_text('"email": "test@gmail.com"')  # the sample's
    await screenshot(page, "08-custom-payload")
    await page.get_by_role("button", name="Test", exact=True).click()
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_text("Success", exact=True)).to_be_visible()
    await page.get_by_role("button", name="Save").click()
    await _row(page, "Mapped")
    await _produce(portal, account, "contact subscribes")
    [_, delivered] = await receiver.wait_for("/mapped", 2)
    body = delivered.json()
    assert set(body) == {"email", "source"} and body["source"] == "newsletter"
    assert body["email"] == input_event("contact subscribes", account)["contact"]["ecom_email"]


async def test_edit_and_save_changes_the_fields_and_keeps_the_secret_and_password(
    portal: Portal, receiver: Receiver
) -> None:
    account = unique("acct_")
    hook = await portal.create_webhook(
        account,
        "Before",
        receiver.url("/edited"),
        secret=SECRET,
        events=["message sent"],
        auth={"type": "basic", "username": "crm", "password": PASSWORD},
        custom_payload=[{"field": "source", "value": "newsletter"}],
    )
    page = await portal.open(account)
    await (await _row(page, "Before")).get_by_role("button", name="Edit").click()
    rows = page.locator(".mapping")
    await expect(rows).to_have_count(1)  # a custom payload opens for editing
    await page.get_by_label("Name", exact=True).fill("After")
    await page.get_by_label("message open", exact=True).check()
    await page.get_by_label("Content type").select_option(label="Form")
    await page.get_by_role("button", name="Add field").click()
    await rows.nth(1).get_by_label("Field name").fill("kind")
    await rows.nth(1).get_by_label("Field mapping").select_option(label="Custom value")
    await rows.nth(1).get_by_label("Custom value").fill("edited")
    await page.get_by_role("button", name="Save").click()  # password and secret left blank
    await expect(page.get_by_role("status")).to_have_text("Webhook saved.")
    await _row(page, "After")

    status, stored = await portal.admin("GET", f"/api/webhooks/{hook['id']}")
    assert status == 200 and isinstance(stored, dict), stored
    assert stored["account_id"] == account
    assert stored["events"] == ["message sent", "message open"]
    assert stored["content_type"] == "form"
    assert stored["custom_payload"] == [
        {"field": "source", "value": "newsletter"},
        {"field": "kind", "value": "edited"},
    ]
    await _produce(portal, account)
    [delivered] = await receiver.wait_for("/edited")
    Webhook(SECRET).verify(delivered.body, delivered.headers, json_parse=False)  # secret kept
    credentials = base64.b64encode(f"crm:{PASSWORD}".encode()).decode()
    assert delivered.headers["Authorization"] == f"Basic {credentials}"  # and the password

    # Active off, saved: the list says so, and the webhook is stored inactive.
    await (await _row(page, "After")).get_by_role("button", name="Edit").click()
    await page.get_by_label("Active").uncheck()
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("Webhook saved.")

    async def stored_inactive() -> bool:
        _, stored = await portal.admin("GET", f"/api/webhooks/{hook['id']}")
        return isinstance(stored, dict) and stored["active"] is False

    await wait_until(stored_inactive, 10, "the webhook stored inactive")
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_test_result_shows_only_what_the_answer_has(
    portal: Portal, receiver: Receiver
) -> None:
    account = unique("acct_")
    await portal.create_webhook(account, "Fine", receiver.url("/fine"))
    page = await portal.open(account)
    await (await _row(page, "Fine")).get_by_role("button", name="Test connection").click()
    await page.get_by_role("button", name="Send").click()
    result = page.get_by_role("region", name="Test connection")
    await expect(result.get_by_text("Success", exact=True)).to_be_visible()
    await expect(result.get_by_text("Duration:")).to_be_visible()
    assert "null" not in await result.inner_text()


async def test_a_tampered_link_names_no_account_and_the_page_has_its_icon(portal: Portal) -> None:
    link = await portal.link(unique("acct_"))
    token = link.split("#token=", 1)[1]
    body, signature = token.rsplit(".", 1)
    tampered = f"{body}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    context = await portal.browser.new_context()
    page = await context.new_page()
    icons: list[int] = []
    page.on(
        "response",
        lambda response: icons.append(response.status) if "favicon" in response.url else None,
    )
    await page.goto(link.replace(token, tampered))
    await expect(page.get_by_role("alert")).to_contain_text("expired or is not valid")
    await expect(page.locator("#account")).to_have_text("")
    async with portal.session.get(portal.base + "/favicon.ico") as response:
        assert response.status == 200 and response.content_type == "image/svg+xml"
    assert 404 not in icons


async def test_an_open_test_panel_follows_the_form(portal: Portal, receiver: Receiver) -> None:
    page = await portal.open(unique("acct_"))
    await page.get_by_role("button", name="+ Webhook").click()
    await page.get_by_label("Name", exact=True).fill("Moving")
    url = page.get_by_label("Payload URL", exact=True)
    await url.fill(receiver.url("/first"))
    await page.get_by_role("button", name="Test", exact=True).click()
    await expect(page.get_by_text(f"Sends to: {receiver.url('/first')}")).to_be_visible()
    await url.fill(receiver.url("/second"))  # changed while the panel is open
    await expect(page.get_by_text(f"Sends to: {receiver.url('/second')}")).to_be_visible()
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_text("Success", exact=True)).to_be_visible()
    assert receiver.count("/second") == 1 and receiver.count("/first") == 0
    await expect(page.get_by_role("button", name="Save")).to_be_enabled()  # /second was tested
    assert page.errors == []  # type: ignore[attr-defined]


async def test_hints_say_what_holds_on_this_deployment(portal: Portal) -> None:
    page = await portal.open(unique("acct_"))
    await page.get_by_role("button", name="+ Webhook").click()
    # This deployment allows plain http (the test receivers are on loopback).
    await expect(page.get_by_text("https, or http: allowed on this deployment")).to_be_visible()
    await expect(page.get_by_text("None checked: every event.")).to_be_visible()
    await page.get_by_label("message sent", exact=True).check()
    await page.get_by_label("message open", exact=True).check()
    await expect(page.get_by_text(re.compile(r"^2 of \d+ events\.$"))).to_be_visible()
    await expect(page.get_by_text("None checked: every event.")).to_have_count(0)


async def test_a_bad_url_is_shown_next_to_its_field_before_any_test(
    portal: Portal, receiver: Receiver
) -> None:
    page = await portal.open(unique("acct_"))
    await page.get_by_role("button", name="+ Webhook").click()
    url = page.get_by_label("Payload URL", exact=True)
    await url.fill("ftp://files.example.com/in")
    await url.press("Tab")  # leaving the field checks it
    error = page.locator(f"#{await url.get_attribute('id')}-error")
    await expect(error).to_have_text("URL scheme must be http or https (got 'ftp')")
    await page.get_by_role("button", name="Test", exact=True).click()
    await expect(error).to_have_text("URL scheme must be http or https (got 'ftp')")
    await expect(page.get_by_role("region", name="Test")).to_have_count(0)  # nothing to send
    await url.fill(receiver.url("/fixed"))
    await page.get_by_role("button", name="Test", exact=True).click()
    await expect(error).to_have_text("")
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_text("Success", exact=True)).to_be_visible()
    assert receiver.count("/fixed") == 1
    assert page.errors == []  # type: ignore[attr-defined]


async def test_the_preview_is_of_the_chosen_event_and_a_test_shows_what_it_sent(
    portal: Portal, receiver: Receiver
) -> None:
    page = await portal.open(unique("acct_"))
    await page.get_by_role("button", name="+ Webhook").click()
    await page.get_by_label("Payload URL", exact=True).fill(receiver.url("/preview"))
    await page.get_by_label("message sent", exact=True).check()
    await page.get_by_label("message clicked", exact=True).check()
    await page.get_by_label("Custom payload").check()
    row = page.locator(".mapping").nth(0)
    await row.get_by_label("Field name").fill("link")
    await row.get_by_label("Field mapping").select_option(label="Clicked URL")
    preview = page.locator("pre").first
    await expect(preview).to_contain_text('"link": null')  # message sent has no click
    await page.get_by_label("Preview event").select_option("message clicked")
    await expect(preview).to_contain_text('"link": "https://clicked.link/"')
    await page.get_by_role("button", name="Test", exact=True).click()
    await page.get_by_label("Event", exact=True).select_option("message clicked")
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_text("Success", exact=True)).to_be_visible()
    await expect(page.get_by_role("heading", name="Request body sent")).to_be_visible()
    await expect(page.get_by_text('{"link":"https://clicked.link/"}')).to_be_visible()
