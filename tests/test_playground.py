"""The playground page (`textgen serve`'s `/`), driven in headless Chromium
(Debian's `chromium` package, through Playwright's Python package) against a
real `textgen serve` subprocess.

Run as a script to write a screenshot of a model's page (how the README's was
made): `python tests/test_playground.py models/saltmarsh.keras docs/playground.png`.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import Server

pytestmark = pytest.mark.slow

# As root on a machine with no network: no sandbox, nothing fetched in the
# background (see the README's "Tests").
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    return os.environ.get("TEXTGEN_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        message = "Debian's chromium is not installed: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI installs it: .ci/run)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(trained, name_model):
    running = Server("-m", str(trained[0]), "-m", str(name_model[0]))
    yield running
    assert running.stop() == 0, "".join(running.log)


class Page:
    """One tab on the playground, recording what the console says."""

    def __init__(self, browser, url: str, width: int = 1000) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.errors: list[str] = []
        self.page.on(
            "console",
            lambda m: self.errors.append(m.text) if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url + "/")

    def models_loaded(self) -> None:
        self.page.wait_for_selector("#model option", state="attached")

    def fill(self, **fields: str) -> None:
        for name, value in fields.items():
            self.page.fill("#" + name.replace("_", "-"), value)

    def finished_texts(self, count: int = 1) -> list[str]:
        """The generated text of each sample, once all `count` have ended."""
        # Selectors, not predicates: the page's Content-Security-Policy
        # forbids the eval that `wait_for_function` needs.
        ended = self.page.locator(".sample .end:not(:empty)")
        ended.nth(count - 1).wait_for(timeout=60_000)
        return self.page.eval_on_selector_all(
            ".sample .generated", "nodes => nodes.map(n => n.textContent)"
        )

    def close(self) -> None:
        self.page.close()


def _api(server: Server, body: dict, key: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = server.post(body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_seed_streams_the_text_the_api_gives(browser, server, tmp_path):
    page = Page(browser, server.url)
    page.models_loaded()
    page.page.select_option("#model", "pattern")
    page.fill(seed="one two", temperature="1.5", max_tokens="30", random_seed="11")
    page.page.press("#seed", "Control+Enter")  # the keyboard way to Generate
    (shown,) = page.finished_texts()
    answer = _api(
        server,
        {"model": "pattern", "prompt": "one two", "max_tokens": 30,
         "temperature": 1.5, "top_p": 1, "seed": 11},
    )  # fmt: skip
    assert shown == answer["choices"][0]["text"]
    # Every token shaded, its alternatives on hover; the usage line.
    tokens = page.page.locator(".sample .token")
    assert tokens.count() == answer["usage"]["completion_tokens"] == 30
    assert "".join(tokens.all_text_contents()) == shown
    tokens.nth(2).hover()
    assert page.page.is_visible("#tip")
    assert "p = " in page.page.inner_text("#tip")
    assert "30 generated tokens" in page.page.inner_text("#usage")
    shot = tmp_path / "playground.png"
    page.page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.errors == []
    page.close()


def test_the_controls_start_at_the_servers_defaults(browser, server):
    """The page's temperature and length start where the library's do: it
    reads them from GET /v1/settings (the HTML holds other values until
    then), so the page, the command line and the API share one default."""
    import httpx

    fields = httpx.get(server.url + "/v1/settings", timeout=10).json()["fields"]
    page = Page(browser, server.url)
    page.models_loaded()
    temperature = fields["temperature"]["default"]
    assert float(page.page.input_value("#temperature")) == temperature == 0.8
    assert page.page.inner_text("#temperature-value") == "0.8"
    assert page.page.input_value("#max-tokens") == str(fields["max_tokens"]["default"])
    assert page.page.get_attribute("#top-p", "title") == fields["top_p"]["help"]
    assert page.errors == []
    page.close()


def test_an_item_model_draws_new_items_with_several_samples(browser, server):
    page = Page(browser, server.url)
    page.models_loaded()
    page.page.select_option("#model", "names")
    assert page.page.is_enabled("#novel") and page.page.is_checked("#novel")
    page.fill(seed="", n="3", random_seed="5", temperature="1", max_tokens="20")
    page.page.click("#generate")
    shown = page.finished_texts(3)
    answer = _api(
        server,
        {"model": "names", "prompt": "", "n": 3, "seed": 5, "temperature": 1,
         "top_p": 1, "max_tokens": 20, "novel": True},
    )  # fmt: skip
    assert shown == [c["text"] for c in answer["choices"]]
    assert page.errors == []
    page.close()


def test_stop_cancels_the_request(browser, server):
    before = server.health()["models"]["pattern"]["cancelled"]
    page = Page(browser, server.url)
    page.models_loaded()
    page.page.select_option("#model", "pattern")
    page.fill(seed="one", max_tokens="4096", n="4", temperature="1")
    page.page.click("#generate")
    page.page.wait_for_selector(".sample .token")
    page.page.click("#stop-button")
    page.page.wait_for_selector("#usage:text-is('stopped')")
    assert page.page.is_enabled("#generate")
    start = time.monotonic()
    while server.health()["models"]["pattern"]["cancelled"] == before:
        assert time.monotonic() - start < 60, "the server never saw the Stop"
        time.sleep(0.05)
    assert page.errors == []
    page.close()


def test_a_bad_value_shows_the_servers_one_line_message(browser, server):
    page = Page(browser, server.url)
    page.models_loaded()
    page.fill(max_tokens="99999")
    page.page.click("#generate")
    page.page.wait_for_selector("#error:not([hidden])")
    message = page.page.inner_text("#error")
    assert message == "max_tokens must be from 0 to 4,096, not 99,999"
    assert page.page.locator(".sample").count() == 0
    page.close()


def test_a_phone_sized_screen_needs_no_sideways_scrolling(browser, server):
    page = Page(browser, server.url, width=360)
    page.models_loaded()
    page.fill(seed="one two three", max_tokens="60")
    page.page.click("#generate")
    page.finished_texts()
    width = page.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360
    assert page.errors == []
    page.close()


def test_the_page_asks_for_the_key_and_keeps_it_to_itself(browser, trained):
    key = "a-playground-key"
    running = Server("-m", str(trained[0]), "--api-key", key)
    try:
        page = Page(browser, running.url)
        page.page.wait_for_selector("#key-row:not([hidden])")
        assert "API key" in page.page.inner_text("#error")
        page.page.fill("#api-key", key)
        page.page.press("#api-key", "Tab")  # a change: the models load
        page.models_loaded()
        page.fill(seed="one", max_tokens="5", random_seed="3")
        page.page.click("#generate")
        (shown,) = page.finished_texts()
        body = {"prompt": "one", "max_tokens": 5, "seed": 3, "temperature": 0.8}
        answer = _api(running, {**body, "top_p": 1}, key=key)
        assert shown == answer["choices"][0]["text"]
        stored = page.page.evaluate(
            "[localStorage.length, sessionStorage.length, document.cookie]"
        )
        assert stored == [0, 0, ""]
        # Only the 401 of the first look at the models, before the key.
        assert all("401" in error for error in page.errors)
        page.close()
    finally:
        assert running.stop() == 0


def test_no_ui_serves_no_page(trained):
    running = Server("-m", str(trained[0]), "--no-ui")
    try:
        assert httpx.get(running.url + "/", timeout=10).status_code == 404
        assert httpx.get(running.url + "/playground.js", timeout=10).status_code == 404
    finally:
        assert running.stop() == 0


def _screenshot(model: str, out: str) -> None:
    """The README's screenshot: a page of `model` with two samples."""
    from playwright.sync_api import sync_playwright

    running = Server("-m", model)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium_path(), args=CHROMIUM_ARGS
            )
            page = Page(browser, running.url, width=900)
            page.models_loaded()
            page.fill(seed="the lighthouse", n="2", random_seed="4", max_tokens="40")
            page.page.click("#generate")
            page.finished_texts(2)
            page.page.locator(".sample .token").nth(6).hover()
            page.page.screenshot(path=out, full_page=True)
            browser.close()
    finally:
        running.stop()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    _screenshot(*sys.argv[1:3])


@pytest.fixture(scope="module")
def labelled_server(tmp_path_factory, tiny_config):
    """A server of a tiny model trained with labels (genre of each title)."""
    import csv
    import dataclasses

    from textgen.model.config import TrainConfig
    from textgen.training.train import train

    folder = tmp_path_factory.mktemp("labelled")
    corpus = folder / "titles.csv"
    with corpus.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["genre", "title"])
        for i in range(200):
            genre = ("horror", "comedy")[i % 2]
            words = ("dark night grave", "funny party cake")[i % 2].split()
            writer.writerow(
                [genre, " ".join(words[(i // 2 + j) % 3] for j in range(3))]
            )
    model_config, _ = tiny_config
    path = folder / "titles.keras"
    config = TrainConfig(
        epochs=3, documents="lines", text_field="title", label_field="genre", seed=1
    )
    train([corpus], path, dataclasses.replace(model_config, layers=1), config,
          log=lambda line: None)  # fmt: skip
    running = Server("-m", str(path))
    yield running
    assert running.stop() == 0, "".join(running.log)


def test_a_labelled_model_offers_its_labels(browser, labelled_server, server):
    page = Page(browser, labelled_server.url)
    page.models_loaded()
    assert page.page.is_visible("#label-row")
    options = page.page.eval_on_selector_all(
        "#label option", "nodes => nodes.map(n => n.value)"
    )
    assert options == ["", "comedy", "horror"]
    page.page.select_option("#label", "comedy")
    page.fill(seed="", n="3", random_seed="5", temperature="1", max_tokens="6")
    page.page.click("#generate")
    shown = page.finished_texts(3)
    answer = _api(
        labelled_server,
        {"prompt": "", "n": 3, "seed": 5, "temperature": 1, "top_p": 1,
         "max_tokens": 6, "novel": True, "label": "comedy"},
    )  # fmt: skip
    assert shown == [c["text"] for c in answer["choices"]]
    assert page.errors == []
    page.close()
    other = Page(browser, server.url)  # a model without labels: no such row
    other.models_loaded()
    assert not other.page.is_visible("#label-row")
    other.close()
