"""The report's index.html in a real browser, Debian's Chromium (headless): it loads with a clean console,
every image and every interactive plot renders, and nothing is fetched from the network (plotly.js is
read from beside the pages). A screenshot of each page is kept under outputs/test-artifacts/.

Selenium (the dev extra) drives Chromium through Debian's own chromedriver, which always matches the
installed browser: `Service(executable_path=...)` and SE_OFFLINE keep Selenium Manager from downloading a
driver, and Selenium's logging capability hands the console and the network requests over without a
DevTools client of our own. Skips without Chromium, its driver or Selenium, which `make setup` installs
(a failure under CI=true).
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest
from test_report import CLIP, measured_study, plot_traces

from lit_video.cli import main
from lit_video.sweep.report import write_report

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the dev extra: pip install -e .[dev])")

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "outputs" / "test-artifacts"  # git-ignored
# Without the networking flags Chromium reaches out to Google on its own and logs errors; the resolver rule
# makes any host name fail, so a page that needed the network shows it as a console error.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1280,1000")
NETWORK_SCHEMES = ("http", "https", "ws", "wss", "ftp")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium with its console and network requests logged, for the module's tests."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.skip(f"needs Debian's Chromium and its driver ({', '.join(missing)} missing): "
                    "apt-get install chromium chromium-driver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class References(HTMLParser):
    """Every src and href of a page's tags, e.g. ("script", "src", "plotly.min.js")."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [(tag, name, value) for name, value in attrs if name in ("src", "href") and value]


def references(page: Path) -> list[tuple[str, str, str]]:
    parser = References()
    parser.feed(page.read_text())
    return parser.found


def open_page(driver, page: Path) -> list[str]:
    """Load `page` and return the URLs it requested; fails on any console message at SEVERE."""
    driver.get_log("performance")  # what the previous page left
    driver.get_log("browser")
    driver.get(page.as_uri())
    severe = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, f"{page.name}: console errors {severe}"
    messages = (json.loads(entry["message"])["message"] for entry in driver.get_log("performance"))
    return [m["params"]["request"]["url"] for m in messages if m["method"] == "Network.requestWillBeSent"]


def assert_offline(report: Path, requested: list[str], page: Path) -> None:
    """No reference to another host in the page's HTML, and nothing it requested left the report folder."""
    for tag, name, value in references(page):
        assert "//" not in value and ":" not in value.split("/")[0], f"{page.name}: <{tag} {name}={value!r}>"
    for url in requested:
        parsed = urlparse(url)
        assert parsed.scheme not in NETWORK_SCHEMES, f"{page.name} requested {url}"
        if parsed.scheme == "file":
            assert Path(parsed.path).resolve().is_relative_to(report.resolve()), f"{page.name} requested {url}"


def save_screenshot(driver, name: str, tmp_path: Path) -> Path:
    """The whole page as a PNG, under tmp_path and outputs/test-artifacts/."""
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path = tmp_path / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, ARTIFACTS / path.name)
    return path


# Per plotly graph: its SVG layers, the points its marker and bar traces should draw, those drawn, its legend
RENDERED_PLOTS = """
return Array.from(document.querySelectorAll('.plotly-graph-div')).map(gd => ({
  svgs: gd.querySelectorAll('svg.main-svg').length,
  expected: gd.data.reduce((n, t) => n + (t.type === 'bar' || (t.mode || '').includes('markers') ? t.x.length : 0), 0),
  drawn: gd.querySelectorAll('.point').length,
  legend: Array.from(gd.querySelectorAll('.legendtext')).map(e => e.textContent),
}));
"""


def check_report_in_browser(driver, report: Path, name: str, tmp_path: Path) -> dict[str, list[str]]:
    """Open the report's index.html and every plot page it links to, as someone reading it would; returns
    each plot page's legend entries as drawn."""
    index = report / "index.html"
    requested = open_page(driver, index)
    assert_offline(report, requested, index)
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    links = [value for tag, attr, value in references(index) if tag == "a" and value.endswith(".html")]
    assert images and len(images) == len(links)
    assert all(complete and width > 0 for _, complete, width in images), images  # every PNG decoded
    save_screenshot(driver, name, tmp_path)
    legends = {}
    for link in links:
        page = report / link
        requested = open_page(driver, page)
        assert_offline(report, requested, page)
        (plot,) = driver.execute_script(RENDERED_PLOTS)
        assert plot["svgs"] >= 1 and plot["expected"] > 0 and plot["drawn"] == plot["expected"], (link, plot)
        legends[link] = plot["legend"]
    return legends


def test_a_one_study_report_opens_in_chromium_offline_with_every_plot_drawn(browser, tmp_path):
    study = measured_study(tmp_path / "measured.db", seed=3)
    report = write_report(study, tmp_path / "report")
    legends = check_report_in_browser(browser, report.out_dir, "report_one_study", tmp_path)
    # every figure, including the log axis with its iso-compute levels and the importances' bars
    assert {"objective_vs_train_pflops.html", "param_importances.html", "objective_vs_clip_len.html"} <= set(legends)
    assert legends["objective_vs_train_pflops.html"] == ["clip_len=4", "clip_len=8", "clip_len=16"]
    assert (tmp_path / "report_one_study.png").stat().st_size > 10_000


def test_a_cross_study_report_opens_in_chromium_with_both_studies_in_every_plot(browser, tmp_path, capsys):
    measured_study(tmp_path / "a.db", name="r2plus1d", seed=0)
    measured_study(tmp_path / "b.db", name="timesformer", seed=5)
    out = tmp_path / "report"
    assert main(["report", "--storage", f"sqlite:///{tmp_path / 'a.db'}", "--study", "r2plus1d",
                 "--storage", f"sqlite:///{tmp_path / 'b.db'}", "--study", "timesformer", "--out", str(out)]) == 0
    capsys.readouterr()
    legends = check_report_in_browser(browser, out, "report_cross_study", tmp_path)
    assert set(legends) == {"objective_vs_clip_len.html", "objective_vs_stride.html", "objective_vs_gflops.html",
                            "objective_vs_train_pflops.html"}
    for page, legend in legends.items():
        # the legend as drawn is the traces written, and names both studies
        assert legend == [trace["name"] for trace in plot_traces(out / page)]
        assert all(any(entry.startswith(study) for entry in legend) for study in ("r2plus1d", "timesformer"))
    assert legends["objective_vs_" + CLIP.rsplit(".", 1)[1] + ".html"] == ["r2plus1d", "timesformer"]
