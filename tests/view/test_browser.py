"""The run viewer in a real browser: headless Chromium renders it without script errors, and a screenshot
shows the samples table with steps coloured by verdict. `make test-browser` (needs `apt-get install chromium`)."""

import re
import shutil
import subprocess

import pytest
from viewer_run import make_run

from reasonloop.view import ViewConfig, collect, main, render

pytestmark = pytest.mark.browser

GOOD_STEP = (200, 240, 200)  # .good background (#c8f0c8): a step whose verdict is right
WRONG_STEP = (246, 196, 196)  # .wrong (#f6c4c4)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        pytest.fail("no Chromium: apt-get install -y chromium (see README, 'Viewing a run')")
    return found


def browse(page, *args):
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def body_attributes(page) -> dict:
    dom = browse(page, "--dump-dom").stdout
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', re.search(r"<body[^>]*>", dom).group(0)))


def test_chromium_renders_the_page_without_script_errors(tmp_path):
    make_run(tmp_path / "r")
    page = main(ViewConfig(run=str(tmp_path / "r")))
    assert body_attributes(page) == {"errors": "0", "rows": "3", "step": "step 3", "rendered": "1"}
    dom = browse(page, "--dump-dom").stdout
    assert "<summary>records.jsonl: p1 (mcts, correct)</summary>" in dom  # the search tree, unfolded
    assert "Answer: 3   [score 0.950, finished, chosen]" in dom


def test_a_link_opens_a_step_with_a_filter(tmp_path):
    make_run(tmp_path / "r")
    page = main(ViewConfig(run=str(tmp_path / "r")))
    dom = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          page.as_uri() + "?step=1&show=correct"], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-step="step 1"' in body and 'data-rows="2"' in body  # not the default (last) step
    assert dom.count('class="sample"') == 2  # the two right answers of step 1


def test_the_error_sink_catches_a_failing_script(tmp_path):
    make_run(tmp_path / "r")
    data = collect(tmp_path / "r")
    data["steps"][-1]["samples"][0]["text"] = 5  # not a string: the table's renderer throws
    page = tmp_path / "broken.html"
    page.write_text(render(data))
    assert body_attributes(page)["errors"] != "0"


def test_a_screenshot_shows_the_table_with_coloured_steps(tmp_path):
    import matplotlib.image

    make_run(tmp_path / "r")
    page = main(ViewConfig(run=str(tmp_path / "r")))
    shot = tmp_path / "shot.png"
    browse(page, "--window-size=1280,900", f"--screenshot={shot}")
    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(int)
    assert pixels.shape[:2] == (900, 1280)
    colours = {tuple(p) for p in pixels.reshape(-1, 3)[::7]}
    assert GOOD_STEP in colours  # the open sample's steps, coloured by verdict, are on screen
    data = collect(tmp_path / "r")
    data["steps"][-1]["samples"] = data["steps"][-1]["samples"][1:]  # first shown: a step judged wrong
    page.write_text(render(data))
    browse(page, "--window-size=1280,900", f"--screenshot={shot}")
    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(int)
    assert WRONG_STEP in {tuple(p) for p in pixels.reshape(-1, 3)[::7]}
