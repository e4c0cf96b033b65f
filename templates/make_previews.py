"""Make every gallery template's preview.png: the real worker page of a mock run, in headless Chromium.

Run from the checkout after changing a template: ``.venv/bin/python templates/make_previews.py [NAME …]``.
Each thumbnail is the top of the page at 720 × 540 CSS pixels, shot at half scale (360 × 270), so that
``%crowd templates`` can inline all of them into a notebook cheaply.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

import crowdnb as cn
from crowdnb.pages import gallery

CHROMIUM = "/usr/bin/chromium"  # Debian's (`make chromium`); Playwright downloads no browser
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
VIEWPORT = {"width": 720, "height": 540}


def main(names: list[str]) -> None:
    """Write preview.png into each named template's folder (all templates when none is named)."""
    chosen = names or sorted(cn.templates())
    with tempfile.TemporaryDirectory(prefix="crowdnb-previews-") as folder, sync_playwright() as playwright:
        project = cn.open(Path(folder) / "project", create=True)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        for name in chosen:
            described = gallery.describe(name)
            task = cn.Task(
                name, title=described.title, reward=0.1, template=name, data=described.example, project=project
            )
            run = task.launch(provider="mock", architect="local")
            try:
                context = browser.new_context(viewport=VIEWPORT, device_scale_factor=0.5)
                page = context.new_page()
                page.goto(run.worker_url("preview"))
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(described.folder / "preview.png"))
                context.close()
            finally:
                run.stop()
            print(f"{name}: {described.folder / 'preview.png'}")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1:])
