"""``foveate serve``'s web page in headless Chromium (Debian's ``chromium``, driven by Playwright through
``executable_path``; Playwright comes with the dev extra, ``.ci/run`` installs chromium): load the page,
upload a generated scene, ask, watch the search's views drawn over the image, read the answer, and say
whether it was right; the insight memory then holds the run with that verdict (issue 27, items 4 and 5).

The screenshot is a test artefact: written to ``$FOVEATE_SCREENSHOT`` when set (``make docs/web_page.png``
makes the one the README shows), else into the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from foveate.agent import Agent
from foveate.memory import InsightMemory
from foveate.server import ServerLimits, create_app
from foveate.synthetic import generate_scene
from foveate.testing.live_server import live
from foveate.vlm.transformers_vlm import TransformersVLM

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _browser_missing() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; .ci/run installs it)"
    if CHROMIUM is None:
        return "no chromium on PATH (apt-get install chromium; .ci/run installs it)"
    return None


@pytest.fixture(scope="module")
def browser_ready() -> None:
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("CI"):  # CI installs both: a missing browser there is a failure, not a skip
            pytest.fail(missing)
        pytest.skip(missing)


@pytest.fixture
def memory_agent(vlm: TransformersVLM, tmp_path: Path) -> Iterator[tuple[Agent, Path]]:
    path = tmp_path / "memory.db"
    agent = Agent(vlm, workflow="zoom", memory=path, checkpoints=None)
    yield agent, path
    agent.close()


@pytest.mark.slow
def test_the_page_draws_the_search_and_stores_feedback(
    browser_ready: None, memory_agent: tuple[Agent, Path], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    agent, memory_path = memory_agent
    image, item = generate_scene(7, 0)
    scene = tmp_path / "scene.png"
    image.save(scene)
    shot = Path(os.environ.get("FOVEATE_SCREENSHOT") or tmp_path / "web_page.png")
    app = create_app({"foveate-zoom": agent}, ServerLimits(api_key="page-key"))
    with live(app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base.removesuffix("/v1") + "/")  # the page itself needs no key
            page.fill("#key", "page-key")
            page.dispatch_event("#key", "change")  # the models list needs the key
            expect(page.locator("#model option")).to_have_count(1, timeout=30_000)
            page.set_input_files("#file", str(scene))
            expect(page.locator("#ask")).to_be_enabled(timeout=30_000)
            page.fill("#question", item.question)
            page.fill("#options", ", ".join(item.options))
            page.click("#ask")
            expect(page.locator("#answer")).not_to_be_empty(timeout=300_000)
            answer = page.inner_text("#answer")
            assert answer in item.options or answer.startswith("I abstain:")
            # the search's views and the crop it answered from, drawn over the image
            drawn = int(page.get_attribute("#overlay", "data-boxes") or 0)
            assert drawn > 1
            assert "zoom:" in page.inner_text("#log")  # the node's own line
            assert re.search(r"\d+ probes", page.inner_text("#details"))
            page.fill("#truth", item.answer)
            page.click("#right" if answer == item.answer else "#wrong")
            status = page.locator("#feedback-status")
            expect(status).to_contain_text("recorded as memory run", timeout=120_000)
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            said = page.inner_text("#feedback-status")
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    run_id = int(re.search(r"memory run (\d+)", said).group(1))  # type: ignore[union-attr]
    with InsightMemory.open(memory_path) as memory:  # what the page's button stored, read from the file
        stored = memory.get_run(run_id)
    assert stored is not None and stored.correct is (answer == item.answer)
    assert stored.question == item.question
