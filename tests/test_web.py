"""The web chat page end to end: Playwright drives Debian's headless Chromium against a real
``prism serve`` app on loopback (policy-scripted chat model, real tools and store)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import serve_app

from prism.agent.policy_chat import PolicyChat
from prism.api.app import create_app
from prism.service import PrismService

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make system-deps does, as root)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def test_send_a_message_upload_an_image_and_get_cards(browser, api_home, demo_catalog):
    app = create_app(PrismService(api_home["settings"]), llm=PolicyChat(delay=0.2))
    with serve_app(app) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url + "/")
        assert page.title() == "Prism"

        page.fill("#text", "a calm film about space")
        page.click("#send")
        card = page.locator(".card").first
        card.wait_for(timeout=60_000)
        assert card.get_attribute("data-item-id") == "quiet-orbit"
        assert card.locator("h3").inner_text() == "Quiet Orbit"
        assert "astronaut" in card.locator("blockquote").first.inner_text()
        assert "search_catalog" in page.locator("#steps").inner_text()

        page.set_input_files("#image", str(demo_catalog / "query-cat.jpg"))
        page.fill("#text", "something like this picture, with a cat")
        page.click("#send")
        page.locator(".cards").nth(1).locator(".card").first.wait_for(timeout=60_000)
        second = page.locator(".cards").nth(1).locator(".card").first
        assert second.locator("h3").inner_text() == "Whiskers"
        page.wait_for_function("document.querySelectorAll('.card img[src^=\"blob:\"]').length >= 2", timeout=30_000)
        steps = page.locator("#steps").inner_text()
        assert steps.rindex("search_by_image") < steps.rindex("search_catalog")
        # The fast answer (the default): code picked the films, the model's message names the first;
        # the cards come first, so the message is waited for.
        page.wait_for_function("document.querySelectorAll('.msg.prism')[1]?.innerText.trim().length > 0",
                               timeout=30_000)
        assert page.locator(".msg.prism").nth(1).inner_text() == ("For 'something like this picture, with a cat', "
                                                                  "try Whiskers.")
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "web-chat.png"), full_page=True)
        assert not errors, errors
        page.close()


def test_cards_stream_before_the_message_is_written(browser, api_home):
    settings = api_home["settings"].model_copy(update={"agent_fast_answer": True})
    app = create_app(PrismService(settings), llm=PolicyChat(delay=4.0))  # a slow message step
    with serve_app(app) as url:
        page = browser.new_page()
        page.goto(url + "/")
        page.fill("#text", "a calm film about space")
        page.click("#send")
        card = page.locator(".card").first
        card.wait_for(timeout=30_000)
        assert card.locator("h3").inner_text() == "Quiet Orbit" and card.locator("blockquote").count() >= 1
        assert page.locator(".msg.prism").first.inner_text() == ""  # the message is still being written
        page.wait_for_function("document.querySelector('.msg.prism').textContent.length > 0", timeout=30_000)
        assert page.locator(".msg.prism").first.inner_text() == "For 'a calm film about space', try Quiet Orbit."
        assert page.locator(".card").count() == settings.agent_max_picks  # the answer's cards replaced the streamed
        page.close()
