"""examples/basic_chat in a real browser: headless Chromium, driven by Playwright.

The example runs as its README says (``python -m examples.basic_chat``); two pages in their own
browser contexts join a room, chat, take a profile picture and hold a WebRTC call over
Chromium's fake camera. Screenshots go to ``artifacts/`` at the repository root.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    expect,
    sync_playwright,
)

from .needs import missing
from .servers import run_example

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
SOCKETIO_CLIENT = ROOT / "examples/basic_chat/node_modules/socket.io-client/dist/socket.io.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",  # grant camera permission without a prompt
    "--use-fake-device-for-media-stream",  # a synthetic camera
    "--allow-loopback-in-peer-connection",  # calls still connect on a machine with only lo
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
XSS = "<img src=x onerror=alert(1)>"
DATA_JPEG = re.compile(r"^data:image/jpeg;base64,")


def require(path: Path, how_to_get_it: str) -> None:
    """Skip when ``path`` is missing; on CI (``CI=true``) fail instead, so nothing hides."""
    if path.exists():
        return
    missing(f"{path} is missing; {how_to_get_it}")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """Run the example with its README command; yield its base URL."""
    require(SOCKETIO_CLIENT, "run: npm ci --prefix examples/basic_chat")
    with run_example(ARTIFACTS / "basic_chat-server.log") as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require(CHROMIUM, "install Debian's chromium package (scripts/bootstrap --tests does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@dataclass
class Person:
    """One user's page, and what the page did that a user would notice."""

    name: str
    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def watch(self) -> None:
        """Record dialogs (dismissing them), script errors and every request the page makes."""

        def on_dialog(dialog: Dialog) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(message.text)

        self.page.on("dialog", on_dialog)
        self.page.on("console", on_console)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))

    def say(self, message: str) -> None:
        self.page.fill("#message", message)
        self.page.click("#send")

    def messages(self, text: str | None = None) -> Locator:
        items = self.page.locator("#chat li.message")
        return items if text is None else items.filter(has_text=text)

    def wait_for_video(self, selector: str, timeout: float = 10_000) -> None:
        """Wait until the ``<video>`` shows frames, then check that it keeps playing."""
        self.page.wait_for_function(
            "sel => document.querySelector(sel).videoWidth > 0", arg=selector, timeout=timeout
        )
        video = self.page.locator(selector)
        start = video.evaluate("v => v.currentTime")
        self.page.wait_for_timeout(500)
        assert video.evaluate("v => !v.paused && v.currentTime") > start

    def screenshot(self, test: str) -> None:
        self.page.screenshot(path=ARTIFACTS / f"basic_chat-{test}-{self.name.lower()}.png")


def arrive(browser: Browser, url: str, name: str) -> Person:
    """Open the chat page at ``url`` in a browser context of its own, and type ``name``."""
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    page = context.new_page()
    person = Person(name, page)
    person.watch()
    page.goto(url)
    expect(page.locator("#status")).to_have_text("connected")
    page.fill("#name", name)
    return person


@pytest.fixture
def people(
    request: pytest.FixtureRequest, server: str, browser: Browser
) -> Iterator[tuple[Person, Person]]:
    """Alice and Bob, each on the chat page in a room of their own test, both joined."""
    room = f"{request.node.name}-{uuid.uuid4().hex[:8]}"
    pair = [arrive(browser, f"{server}/?room={room}", name) for name in ("Alice", "Bob")]
    alice, bob = pair
    # The sender is included in `announce`: Alice sees both joins, Bob sees his own.
    announce = f"New client in the {room} room."
    expect(alice.page.locator("#chat li.announce")).to_have_text([announce, announce])
    expect(bob.page.locator("#chat li.announce")).to_have_text([announce])
    yield alice, bob
    test = request.node.name.removeprefix("test_")
    for person in pair:
        person.screenshot(test)
        person.page.context.close()
    for person in pair:
        assert person.errors == [], f"{person.name}'s page reported errors"


def test_chat_goes_both_ways(people: tuple[Person, Person]) -> None:
    alice, bob = people
    alice.say("Hello Bob")
    bob.say("Hi Alice, all good?")
    for person in (alice, bob):  # everyone in the room, the sender too, in the order sent
        expect(person.messages().locator(".author")).to_have_text(["Alice", "Bob"])
        expect(person.messages().locator(".text")).to_have_text(
            ["Hello Bob", "Hi Alice, all good?"]
        )
    expect(alice.page.locator("#message")).to_have_value("")  # cleared for the next message


def test_message_markup_is_shown_as_text_and_runs_nothing(people: tuple[Person, Person]) -> None:
    alice, bob = people
    bob.say(XSS)
    expect(alice.messages(XSS).locator(".text")).to_have_text(XSS)
    # A later message has arrived, so an injected element would have loaded and fired by now.
    bob.say("done")
    expect(alice.messages("done")).to_have_count(1)
    for person in (alice, bob):
        assert person.page.locator("#chat img").count() == 0
        assert person.page.locator("#chat .text *").count() == 0
        assert person.dialogs == []
        assert not [url for url in person.requests if url.endswith("/x")]


def test_camera_selector_and_profile_picture(people: tuple[Person, Person]) -> None:
    alice, bob = people
    cameras = alice.page.locator("#camera option")
    expect(cameras.first).to_contain_text("fake")  # labels appear once permission is given
    alice.wait_for_video("#local-video")

    alice.page.click("#snapshot-button")
    snapshot = alice.page.locator("#snapshot")
    expect(snapshot).to_be_visible()
    expect(snapshot).to_have_attribute("src", DATA_JPEG)
    alice.say("Say cheese")

    avatar = bob.messages("Say cheese").locator("img.avatar")
    expect(avatar).to_have_attribute("src", DATA_JPEG)
    size = avatar.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
    assert size == [96, 72]
    # Bob has no picture: his messages come without one.
    bob.say("I'm camera shy")
    expect(alice.messages("camera shy")).to_have_count(1)
    expect(alice.messages("camera shy").locator("img")).to_have_count(0)


def test_video_call_connects(people: tuple[Person, Person]) -> None:
    alice, bob = people
    for person in (alice, bob):
        person.wait_for_video("#local-video")
        person.page.click("#snapshot-button")
    alice.say("Calling you now")
    expect(bob.messages("Calling you now")).to_have_count(1)

    alice.page.click("#call")
    for person in (alice, bob):
        expect(person.page.locator("#call-state")).to_have_text("connected", timeout=20_000)
        expect(person.page.locator("#call")).to_be_disabled()
        person.wait_for_video("#remote-video", timeout=20_000)


def test_who_is_here_shows_names_as_text_and_drops_who_leaves(
    people: tuple[Person, Person], browser: Browser
) -> None:
    alice, bob = people
    for person in (alice, bob):  # each page lists both, by name
        expect(person.page.locator("#people li")).to_have_text(["Alice", "Bob"])

    # A third person, whose name is markup, comes to the same room, then closes her page.
    mallory = arrive(browser, alice.page.url, XSS)
    try:
        for person in (alice, bob, mallory):
            expect(person.page.locator("#people li")).to_have_text([XSS, "Alice", "Bob"])
        # A later message has arrived, so an injected element would have loaded and fired.
        bob.say("done")
        for person in (alice, bob, mallory):
            expect(person.messages("done")).to_have_count(1)
            assert person.page.locator("#people li *").count() == 0
            assert person.dialogs == []
            assert not [url for url in person.requests if url.endswith("/x")]
        alice.screenshot("who_is_here-with-mallory")
        assert mallory.errors == [], "Mallory's page reported errors"
    finally:
        mallory.page.context.close()

    for person in (alice, bob):  # closing the page disconnects her: she leaves the list
        expect(person.page.locator("#people li")).to_have_text(["Alice", "Bob"])


def test_a_page_whose_connection_drops_comes_back_missing_nothing(
    people: tuple[Person, Person],
) -> None:
    alice, bob = people
    for person in (alice, bob):
        expect(person.page.locator("#people li")).to_have_text(["Alice", "Bob"])
    alice.say("Back in a minute")
    expect(bob.messages("Back in a minute")).to_have_count(1)

    # Offline, Chromium closes the page's websocket at once, as a network loss would; the page
    # keeps trying to reconnect, and fails until it is back online.
    alice.page.context.set_offline(True)
    lost = "Connection lost, reconnecting…"
    expect(alice.page.locator("#chat li.status")).to_have_text([lost])
    expect(alice.page.locator("#status")).to_have_text("disconnected, reconnecting…")
    expect(alice.page.locator("#people li")).to_have_count(0)
    # The server has seen her go once Bob's list has: then Bob talks to the room.
    expect(bob.page.locator("#people li")).to_have_text(["Bob"])
    meanwhile = ["Alice?", "Are you there?", XSS]
    for text in meanwhile:
        bob.say(text)
    expect(bob.messages().locator(".text")).to_have_text(["Back in a minute", *meanwhile])
    expect(alice.messages()).to_have_count(1)

    alice.page.context.set_offline(False)
    # Reconnection attempts back off to 5 seconds apart: the next one may be that far.
    expect(alice.page.locator("#status")).to_have_text("connected", timeout=15_000)
    expect(alice.page.locator("#chat li.status")).to_have_text(
        [lost, "Reconnected: nothing was missed."]
    )
    # What Bob said meanwhile is there, in order, once each, and as text.
    expect(alice.messages().locator(".author")).to_have_text(["Alice", "Bob", "Bob", "Bob"])
    expect(alice.messages().locator(".text")).to_have_text(["Back in a minute", *meanwhile])
    # She is present again, under her name, on both pages.
    for person in (alice, bob):
        expect(person.page.locator("#people li")).to_have_text(["Alice", "Bob"])

    bob.say("Welcome back")
    alice.say("Thanks, I missed nothing")
    everything = ["Back in a minute", *meanwhile, "Welcome back", "Thanks, I missed nothing"]
    for person in (alice, bob):
        expect(person.messages().locator(".text")).to_have_text(everything)
        assert person.page.locator("#chat img, #chat .text *").count() == 0
        assert person.dialogs == []
    # She came back as herself, not as a newcomer: no "New client" again, on either page.
    expect(alice.page.locator("#chat li.announce")).to_have_count(2)
    expect(bob.page.locator("#chat li.announce")).to_have_count(1)
    expect(bob.page.locator("#chat li.status")).to_have_count(0)
