"""The console's pages through its ASGI app: login, CSRF, headers, escaping, the rule editor,
and the verdicts of the story page (which reuse the rules stage's matcher)."""

from __future__ import annotations

import errno
import io
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from rules_stories import rule, story
from starlette.testclient import TestClient

from pipeline.config import ConsoleSettings, load_config
from pipeline.console.app import Console, build_app, templates
from pipeline.console.highlight import Span, annotate, annotate_paragraphs, marked_snippet
from pipeline.console.rule_edit import apply_edit, rule_source, save_rules
from pipeline.console.security import Access, LoginThrottle, access_for, is_loopback
from pipeline.errors import ConfigError
from pipeline.history.store import HistoryStore
from pipeline.metrics import Metrics
from pipeline.rules.compile import compile_rules
from pipeline.rules.match import explain_story, match_story

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-pass"


def make_console(tmp_path: Path, access: Access) -> tuple[TestClient, Console]:
    shutil.copy(ROOT / "configs" / "rules.yaml", tmp_path / "rules.yaml")
    config = load_config(rules_path=tmp_path / "rules.yaml", state_dir=tmp_path / "state")
    store = HistoryStore.in_dir(config.state_dir)
    console = Console(config, store, Metrics(), access, LoginThrottle(3, 60), templates())
    return TestClient(build_app(console, "test-secret"), follow_redirects=False), console


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def version_of(html: str) -> str:
    """The rules file's version the editor page was rendered from (its stale-save guard)."""
    found = re.search(r'name="version" value="(\w+)"', html)
    assert found is not None
    return found.group(1)


def test_pages_need_a_login_and_the_login_is_rate_limited(tmp_path: Path) -> None:
    client, console = make_console(tmp_path, Access(PASSWORD, None))
    assert client.get("/alerts").headers["location"] == "/login?next=/alerts"
    assert client.get("/healthz").status_code == 200
    token = csrf_of(client.get("/login").text)
    for _ in range(3):
        assert client.post("/login", data={"csrf": token, "password": "no"}).status_code == 401
    blocked = client.post("/login", data={"csrf": token, "password": PASSWORD})
    assert blocked.status_code == 429
    logins = console.metrics.registry.get_sample_value
    assert logins("newsmon_console_logins_total", {"outcome": "throttled"}) == 1


def test_a_login_opens_the_pages_and_a_form_without_its_token_is_refused(tmp_path: Path) -> None:
    client, _ = make_console(tmp_path, Access(PASSWORD, "tok"))
    token = csrf_of(client.get("/login").text)
    assert client.post("/login", data={"password": PASSWORD}).status_code == 403
    ok = client.post("/login", data={"csrf": token, "password": PASSWORD, "next": "//evil.example"})
    assert (ok.status_code, ok.headers["location"]) == (303, "/alerts")
    page = client.get("/alerts")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    source = "id: tesla\nterms: [Tesla]\n"
    assert client.post("/rules/tesla", data={"source": source, "action": "save"}).status_code == 403
    bearer = TestClient(client.app, follow_redirects=False)
    assert bearer.get("/alerts", headers={"Authorization": "Bearer tok"}).status_code == 200
    assert bearer.get("/alerts", headers={"Authorization": "Bearer no"}).status_code == 303


def test_a_non_loopback_bind_without_a_password_refuses_to_start() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    with pytest.raises(ConfigError, match="not loopback"):
        access_for(ConsoleSettings(), "0.0.0.0")
    assert access_for(ConsoleSettings(password="x"), "0.0.0.0").required


def test_story_text_is_escaped_and_marks_nest() -> None:
    html = annotate("<b>Tesla</b> Inc", [Span(3, 8, "hit", "rule t"), Span(3, 12, "ent ent-ORG")])
    assert "<b>" not in html and "&lt;b&gt;" in html
    assert (
        '<mark class="hit" title="rule t"><span class="ent ent-ORG" title="">Tesla</span></mark>'
        in html
    )
    assert marked_snippet("a **<i>x</i>** b") == 'a <mark class="hit">&lt;i&gt;x&lt;/i&gt;</mark> b'


def test_story_paragraphs_are_annotated_apart_and_a_span_over_a_break_is_cut() -> None:
    text = "<i>One</i> New\nYork two\n\nthree"
    spans = [Span(11, 19, "ent ent-GPE", "GPE"), Span(20, 23, "hit", "rule n")]
    paragraphs = annotate_paragraphs(text, spans)
    assert paragraphs == [
        '&lt;i&gt;One&lt;/i&gt; <span class="ent ent-GPE" title="GPE">New</span>',
        '<span class="ent ent-GPE" title="GPE">York</span> <mark class="hit" title="rule n">two'
        "</mark>",
        "three",
    ]


def test_verdicts_agree_with_match_story_and_say_why_a_rule_came_close() -> None:
    s = story(
        "Nikola Tesla built coils. Tesla shares fell.",
        entities=[("PERSON", "Nikola Tesla")],
        feed="wire",
    )
    rules = [
        rule("org", "Tesla", entity_types=["ORG"]),
        rule("any", "Tesla"),
        rule("all", "Tesla", all=["battery"]),
        rule("none", "Tesla", none=["coils"]),
        rule("src", "Tesla", sources=["reuters.com"]),
        rule("quiet", "Rotterdam"),
    ]
    compiled = compile_rules(rules)
    verdicts = {v.rule.id: v for v in explain_story(s, compiled)}
    fired = {m.rule.id for m in match_story(s, compiled)}
    assert {k for k, v in verdicts.items() if v.fired} == fired == {"any"}
    assert "quiet" not in verdicts
    assert verdicts["org"].reasons == ("entity_types: no match lies in a ORG entity",)
    assert verdicts["all"].reasons == ("all: 'battery' does not occur",)
    assert verdicts["none"].reasons == ("none: 'coils' occurs",)
    assert verdicts["src"].reasons[0].startswith("sources:")


def test_editing_one_rule_keeps_the_comments_and_saving_keeps_the_previous_file(
    tmp_path: Path,
) -> None:
    _, console = make_console(tmp_path, Access(None, None))
    path = console.config.rules_path
    original = path.read_text()
    assert rule_source(original, "unbundling").startswith("id: unbundling\n")
    edit = apply_edit(original, "unbundling", "id: unbundling\nterms: [unbundling, dock strike]\n",
                      path, console.config.settings)  # fmt: skip
    assert edit.problems == [] and edit.rule is not None
    assert edit.text.count("#") == original.count("#"), "comments lost"
    assert "dock strike" in edit.text and "id: tesla" in edit.text
    save_rules(path, edit.text)
    assert (tmp_path / "rules.yaml.prev").read_text() == original
    bad = apply_edit(original, "tesla", "id: tesla\nterms: [Tesla]\nseverity: huge\n", path,
                     console.config.settings)  # fmt: skip
    assert any("rules[0] (id 'tesla'): field 'severity'" in p for p in bad.problems), bad.problems
    assert all(str(path) in p for p in bad.problems)


def test_the_editor_checks_tests_and_refuses_a_save_over_a_newer_file(tmp_path: Path) -> None:
    client, console = make_console(tmp_path, Access(None, None))
    console.store.add(
        [story("The port unbundling plan", title="Unbundling ports")], [], time.time()
    )
    page = client.get("/rules/unbundling").text
    form = {"csrf": csrf_of(page), "version": version_of(page)}
    source = "id: unbundling\nterms: [unbundling]\nseverity: critical\n"
    tested = client.post("/rules/unbundling", data={**form, "source": source, "action": "test"})
    assert 'data-outcome="tested"' in tested.text and "Unbundling ports" in tested.text
    console.config.rules_path.write_text(
        console.config.rules_path.read_text() + "\n# edited elsewhere\n"
    )
    stale = client.post("/rules/unbundling", data={**form, "source": source, "action": "save"})
    assert "changed since this editor opened it" in stale.text
    assert "severity: critical" not in console.config.rules_path.read_text()


def test_the_feeds_page_shows_each_feeds_health_from_the_pollers_state(tmp_path: Path) -> None:
    from pipeline.poller.state import FeedState, SqliteStateStore

    shutil.copy(ROOT / "configs" / "rules.yaml", tmp_path / "rules.yaml")
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(
        "feeds:\n  - url: https://wire.example.com/rss\n    name: wire\n"
        "  - url: https://quiet.example.com/rss\n    name: quiet\n"
    )
    config = load_config(
        feeds_path=feeds, rules_path=tmp_path / "rules.yaml", state_dir=tmp_path / "state"
    )
    now = time.time()
    poller = SqliteStateStore(config.state_dir)
    poller.save([
        FeedState(name="wire", url="https://wire.example.com/rss", interval=300.0,
                  last_poll=now - 60, last_success=now - 3600, last_error="timeout: slow",
                  last_error_at=now - 60, consecutive_errors=2, fetches=4, fetches_304=1),
    ])  # fmt: skip
    poller.close()
    store = HistoryStore.in_dir(config.state_dir)
    store.add([story("One", url="https://w.example/1", feed="wire"),
               story("Two", url="https://w.example/2", feed="wire")], [], now)  # fmt: skip
    console = Console(config, store, Metrics(), Access(None, None), LoginThrottle(3, 60),
                      templates())  # fmt: skip
    page = TestClient(build_app(console, "test-secret")).get("/feeds")
    assert page.status_code == 200
    row = re.search(r'<tr class="status-failing" data-feed="wire">(.*?)</tr>', page.text, re.S)
    assert row is not None
    cells = [re.sub(r"<[^>]+>", " ", c).split() for c in re.findall(r"<td.*?</td>", row[1], re.S)]
    success = time.strftime("%Y-%m-%d %H:%M", time.gmtime(now - 3600))
    assert " ".join(cells[2]) == f"{success} UTC", "the last success"
    assert cells[3][:2] == ["timeout:", "slow"] and "2 in a row" in " ".join(cells[3])
    assert cells[4] == ["2", "/", "2"], "stories in 24 h / 7 d"
    assert cells[5] == ["300", "s"], "the current interval"
    assert cells[6] == ["25", "%", "1", "of", "4"], "the 304 ratio"
    assert 'data-feed="quiet"' in page.text and "not polled yet" in page.text


def test_check_and_test_work_on_a_read_only_rules_dir_and_a_save_there_says_why_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Kubernetes the rules are a read-only ConfigMap: the editor still checks and tests
    a rule (its scratch files go elsewhere) and a save answers with the reason, not a 500.
    Writes into the rules directory fail as on a read-only mount (root ignores modes)."""
    client, console = make_console(tmp_path, Access(None, None))
    rules_dir = console.config.rules_path.parent
    real_open = io.open

    def read_only_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if (
            isinstance(file, str | Path)
            and Path(file).parent == rules_dir
            and set(mode) & set("wax+")
        ):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", read_only_open)
    before = console.config.rules_path.read_text()
    page = client.get("/rules/unbundling").text
    form = {
        "csrf": csrf_of(page),
        "version": version_of(page),
        "source": "id: unbundling\nterms: [unbundling]\nseverity: critical\n",
    }
    for action in ("check", "test"):
        answer = client.post("/rules/unbundling", data={**form, "action": action})
        assert answer.status_code == 200 and "data-outcome" in answer.text, action
        assert "Read-only" not in answer.text, action
    saved = client.post("/rules/unbundling", data={**form, "action": "save"})
    assert saved.status_code == 200
    assert "cannot save here: Read-only file system" in saved.text
    assert console.config.rules_path.read_text() == before
    errors = {"outcome": "error"}
    assert (
        console.metrics.registry.get_sample_value("newsmon_console_rule_saves_total", errors) == 1
    )
