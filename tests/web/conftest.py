"""The pages in a real headless Chromium (Debian's), driven by Playwright, against a real server.

Chromium is a system package: `.ci/run` installs it, and in CI (``CI`` set) a missing browser is
a failure. Elsewhere the browser tests are skipped with a message saying how to install it.
Screenshots go to ``artifacts/screenshots/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..e2e.server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; .ci/run installs the chromium package")
        pytest.skip("Chromium is not installed (apt-get install chromium); CI runs these tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("web") / "data", "--tick-ms", "50")
    yield process
    process.stop()


@dataclass
class Watched:
    """A page and everything it said that a test should not ignore."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def expect_error(self, text: str) -> None:
        """A console error containing `text` is part of the test (a refused request logs one)."""
        self.expected.append(text)

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(text in e for text in self.expected)]

    def open(self, path: str) -> None:
        self.page.goto(self.base + path)

    def screenshot(self, name: str, *, viewport: dict[str, int] | None = None) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        if viewport is not None:
            self.page.set_viewport_size(viewport)
            self.page.wait_for_function("() => document.readyState === 'complete'")
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000
        return path


@pytest.fixture
def watched(browser: Any, server: ServerProcess) -> Iterator[Watched]:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    seen = Watched(page, server.base)
    page.on("console", lambda msg: seen.errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: seen.errors.append(f"page error: {exc}"))

    def on_dialog(dialog: Any) -> None:
        seen.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield seen
    context.close()
    assert seen.unexpected_errors() == [], seen.errors
    assert seen.dialogs == [], f"a dialog opened (script ran from data?): {seen.dialogs}"


def register(server: ServerProcess, game_id: str, **extra: Any) -> str:
    """Register a realm and bring it online; returns its game key."""
    key = server.register(game_id, **extra)
    response = server.http.post(
        f"/api/games/{game_id}/heartbeat", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200
    return key


XSS_NAME = "<img src=x onerror=alert(1)>"
