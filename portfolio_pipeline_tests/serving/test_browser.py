"""The dashboard in a real browser: headless Chromium renders the trades table and the plots.

Skipped only when Chromium is absent outside CI (``CI=true``: it must run)."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from portfolio_pipeline_tests.operations.servers import skip_or_fail
from portfolio_pipeline_tests.serving.server import running_server

pytestmark = pytest.mark.slow
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                  "--virtual-time-budget=5000"]  # fmt: skip


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    skip_or_fail("Chromium not found: apt-get install chromium")
    raise AssertionError("unreachable")


class Dom(HTMLParser):
    """What the test checks in the DOM the browser serialised."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.trade_rows = 0
        self.polylines = 0
        self.bars = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table":
            self.stack.append(attributes.get("id") or "")
        if tag == "tr" and self.stack and self.stack[-1] == "trades":
            self.trade_rows += 1
        self.polylines += tag == "polyline"
        self.bars += tag == "rect" and attributes.get("class") == "bar"

    def handle_endtag(self, tag):
        if tag == "table" and self.stack:
            self.stack.pop()


def test_dashboard_renders_in_chromium(tiny_path, tmp_path):
    browser = chromium()
    with running_server(tiny_path, tmp_path / "serve.log") as server:
        dom = subprocess.run(
            [browser, *CHROMIUM_FLAGS, "--dump-dom", server.url + "/"],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        shot = tmp_path / "dashboard.png"
        subprocess.run(
            [browser, *CHROMIUM_FLAGS, "--window-size=1280,1600", f"--screenshot={shot}",
             server.url + "/"],
            capture_output=True, timeout=120, check=True,
        )  # fmt: skip
    parsed = Dom()
    parsed.feed(dom)
    assert parsed.trade_rows == 3, "header + the BUY and the SELL of the tiny warehouse"
    assert "BUY: hrp target above current" in dom and "SELL: hrp target below current" in dom
    assert parsed.polylines == 4 and parsed.bars > 0
    _check_screenshot(shot)


def _check_screenshot(path) -> None:
    from PIL import Image

    image = Image.open(path).convert("RGB")
    assert image.size == (1280, 1600)
    colors = image.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 50, "the page rendered (text, bars and lines), not a blank screen"
    # the plots' series colours are on screen: the first palette colour (#1f77b4)
    assert any(rgb == (0x1F, 0x77, 0xB4) for _, rgb in colors)
