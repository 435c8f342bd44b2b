"""The console in a real browser (Debian's chromium driven by Playwright), on 127.0.0.1.

One end-to-end walk fed by a real `newsmon run` over the loopback newsroom: log in, see
the seed story's three alerts arrive without a reload, open the story and see the three
matches, edit a rule, test it, save it, and see the next alert follow the edited rule.
And one test that story text from the internet cannot run script in the console.

Screenshots (laptop and phone sizes) go to .cache/console-screens/ (not committed).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from newsroom import SEED_RULES, Newsroom, plain_page
from notifier_receiver import Receiver

if TYPE_CHECKING:  # annotations only: at run time importorskip below loads the module
    from playwright.sync_api import Browser, Dialog, Page, ViewportSize

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENS = ROOT / ".cache" / "console-screens"
PASSWORD = "correct horse battery staple"
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LAPTOP: ViewportSize = {"width": 1366, "height": 860}
PHONE: ViewportSize = {"width": 390, "height": 844}
ANTWERP = """Dock workers in Antwerp walked out on Monday in a dock strike over pay, a week after
their colleagues in Rotterdam settled, and container ships began to queue off the Scheldt estuary.
The union said the dock strike would last until the port authority reopened talks on night shifts.
Shipping lines warned customers of delays of several days for cargo bound for Belgium and Germany."""
EDITED_RULE = (
    "id: unbundling\nname: Unbundling\nterms: [unbundling, dock strike]\nseverity: critical\n"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env.update({"NEWSMON_METRICS__PORT": "0", "NEWSMON_EXTRACTION__WORKERS": "1", **extra})
    return env


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the console exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the console did not answer /healthz")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_line(log: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if text in log.read_text(encoding="utf-8", errors="replace"):
            return
        if process.poll() is not None:
            raise AssertionError(f"newsmon run exited with {process.returncode}")
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not logged by newsmon run within 60 s")


def config_args(folder: Path, feeds: Path) -> list[str]:
    return [
        "--config", str(ROOT / "configs" / "newsmon.yaml"), "--rules", str(folder / "rules.yaml"),
        "--feeds", str(feeds), "--state-dir", str(folder / "state"),
    ]  # fmt: skip


class ConsoleProcess:
    def __init__(self, folder: Path, feeds: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        secret = folder / "console-password"
        secret.write_text(PASSWORD + "\n", encoding="utf-8")
        env = child_env(NEWSMON_CONSOLE__PASSWORD_FILE=str(secret))
        command = [
            sys.executable, "-m", "pipeline.cli", "console", "--bind", f"127.0.0.1:{self.port}",
            *config_args(folder, feeds),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
        wait_healthy(self.url, self.process)

    def close(self) -> None:
        stop(self.process)


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup-system.sh installs it (make test)")
    with playwright_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def shoot(page: Page, name: str) -> None:
    """A laptop and a phone screenshot of the whole page, and the laptop's first screen."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}-screen.png"))
    for label, size in (("laptop", LAPTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SCREENS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(LAPTOP)


def text_of(page: Page, selector: str) -> str:
    """The element's text content (Playwright gives None only for a document node)."""
    text = page.text_content(selector)
    assert text is not None, selector
    return text


def log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/alerts")
    assert "/login" in page.url
    page.fill("#password", "wrong")
    page.click("button[type=submit]")
    assert "Wrong password" in text_of(page, ".problem")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/alerts")


def alert_rules(page: Page) -> list[str]:
    rules = [row.get_attribute("data-rule") for row in page.query_selector_all("tr.alert")]
    assert None not in rules, "an alert row without its rule"
    return sorted(rule for rule in rules if rule is not None)


def see_the_story_matches(page: Page) -> None:
    page.click("tr.alert[data-rule=tesla] a.headline")
    page.wait_for_selector("article.story")
    marks = page.query_selector_all("mark.hit")
    assert {f"rule {r}" for r in SEED_RULES} <= {m.get_attribute("title") for m in marks}
    assert page.query_selector(".text .ent-PERSON") is not None
    shoot(page, "story")


def edit_test_and_save_a_rule(page: Page, folder: Path) -> None:
    page.click("tr[data-rule=unbundling] a")
    page.fill("#source", EDITED_RULE)
    page.click("button[value=test]")
    page.wait_for_selector("[data-outcome=tested]")
    assert "Rotterdam dock strike ends" in text_of(page, "#result")
    assert int(text_of(page, ".fired-count")) >= 2
    shoot(page, "rule-test")
    page.click("button[value=save]")
    page.wait_for_selector("[data-outcome=saved]")
    previous = (folder / "rules.yaml.prev").read_text()
    assert previous == (ROOT / "configs" / "rules.yaml").read_text()
    assert "dock strike" in (folder / "rules.yaml").read_text()


def test_alerts_arrive_live_story_shows_matches_and_an_edited_rule_takes_effect(
    newsroom: Newsroom, browser: Browser, tmp_path: Path
) -> None:
    shutil.copy(ROOT / "configs" / "rules.yaml", tmp_path / "rules.yaml")
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(
        f"feeds:\n  - url: {newsroom.feed_url}\n    name: newsroom\n    interval: 1\n",
        encoding="utf-8",
    )
    console = ConsoleProcess(tmp_path, feeds)
    receiver = Receiver()
    run = None
    run_log = (tmp_path / "run.log").open("wb")
    page = browser.new_page(viewport=LAPTOP)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        log_in(page, console.url)
        assert alert_rules(page) == []

        run = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "run", "--allow-private-networks",
             *config_args(tmp_path, feeds), "--webhook", receiver.url(), "--webhook-secret", SECRET],
            env=child_env(NEWSMON_POLLER__MIN_INTERVAL_SECONDS="0.5",
                          NEWSMON_RULES__RELOAD_CHECK_SECONDS="0.5"),
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=run_log,
        )  # fmt: skip
        # (wait_for_function would need eval, which the console's CSP forbids)
        page.locator("tr.alert").nth(2).wait_for(timeout=180_000)
        assert alert_rules(page) == sorted(SEED_RULES), "arrived without a reload"
        shoot(page, "alerts")

        see_the_story_matches(page)
        page.goto(f"{console.url}/rules")
        shoot(page, "rules")
        edit_test_and_save_a_rule(page, tmp_path)
        # The idle run takes the saved file up by itself, before any story comes.
        wait_for_line(tmp_path / "run.log", "rules reloaded", run)
        newsroom.pages["/business/antwerp"] = plain_page("Antwerp dock strike", ANTWERP)
        newsroom.titles["/business/antwerp"] = "Antwerp dockers walk out"
        newsroom.release("/business/antwerp")
        page.goto(f"{console.url}/alerts")
        page.wait_for_selector(
            "tr.alert[data-rule=unbundling][data-severity=critical]", timeout=120_000
        )
        assert "Antwerp" in text_of(page, "tr.alert[data-severity=critical]")

        page.goto(f"{console.url}/feeds")
        page.wait_for_selector("tr[data-feed=newsroom].status-ok")
        shoot(page, "feeds")
        assert errors == []
    finally:
        page.close()
        if run is not None:
            stop(run)
        run_log.close()
        console.close()


SCRIPT = "<script>window.__xss = 1</script>"
IMAGE = '<img src="x" onerror="window.__xss = 2">'


def hostile_history(folder: Path) -> tuple[str, Path]:
    """A history whose story title, text and feed name carry script, and an alert on it."""
    from seed import enriched_seed_story

    from pipeline.config import RulesSettings, load_rules
    from pipeline.history.store import HistoryStore
    from pipeline.metrics import Metrics
    from pipeline.rules.engine import RulesEngine
    from pipeline.rules.store import MEMORY, AlertStore

    shutil.copy(ROOT / "configs" / "rules.yaml", folder / "rules.yaml")
    feed = f"{SCRIPT}wire {IMAGE}"
    seed = enriched_seed_story()
    story = seed.model_copy(
        update={
            "id": "hostile",
            "title": f"{SCRIPT}Tesla {IMAGE} shares jump",
            "text": seed.text.replace("The Tesla CEO", f"{SCRIPT}The Tesla CEO {IMAGE}", 1),
            "feed": feed,
            "url": "javascript:window.__xss=3",
        }
    )
    rules = load_rules(folder / "rules.yaml")
    engine = RulesEngine(
        folder / "rules.yaml", RulesSettings(), AlertStore(MEMORY), Metrics(), rules=rules
    )
    alerts = engine.process(story)
    store = HistoryStore.in_dir(folder / "state")
    store.add([story], alerts, time.time())
    store.close()
    feeds = folder / "feeds.yaml"
    quoted = feed.replace('"', '\\"')
    feeds.write_text(f'feeds:\n  - url: https://wire.example.com/rss\n    name: "{quoted}"\n')
    return story.id, feeds


def test_script_in_a_title_a_body_and_a_feed_name_does_not_run(
    browser: Browser, tmp_path: Path
) -> None:
    """Escaping alone must hold: the browser context ignores the CSP (bypass_csp), so a
    script that reached the page unescaped would run and set window.__xss."""
    story_id, feeds = hostile_history(tmp_path)
    console = ConsoleProcess(tmp_path, feeds)
    context = browser.new_context(bypass_csp=True, viewport=LAPTOP)
    page = context.new_page()
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    try:
        log_in(page, console.url)
        for path in ("/alerts", f"/stories/{story_id}", "/feeds", "/rules", "/alerts?q=tesla"):
            response = page.goto(f"{console.url}{path}")
            assert response is not None and response.status == 200, path
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert response.headers["x-frame-options"] == "DENY"
            page.wait_for_timeout(300)
            assert page.evaluate("() => window.__xss") is None, path
            if path != "/rules":  # the rules page shows no story text
                assert SCRIPT in page.inner_text("main"), f"{path}: not shown as text"
        page.goto(f"{console.url}/stories/{story_id}")
        assert page.query_selector("a[href^='javascript']") is None
        shoot(page, "hostile-story")
        assert dialogs == []
    finally:
        context.close()
        console.close()
