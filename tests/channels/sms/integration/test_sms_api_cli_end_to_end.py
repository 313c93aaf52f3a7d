"""An SMS campaign built only through the HTTP API and the CLI, as a user would.

A real ``nurture serve`` process on loopback (the API, the short links, the status
callbacks), ``nurture`` CLI processes (user, token, ``sms-template set``, ``tick``) and the
Twilio-compatible server of :mod:`tests.fakes.twilio_server`: personalised text, E.164
numbers, signed status callbacks, a click firing the ``sms_click`` child.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from nurture.clock import utcnow
from nurture.db import Database
from tests.fakes.twilio_server import FakeTwilio

SECRET = "sms-end-to-end-secret-key-0123456789"
HUMAN_UA = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nurture:
    """The server process, the CLI, and an API client with a token made by the CLI."""

    def __init__(self, environ: dict[str, str], base_url: str) -> None:
        self.environ = environ
        self.base_url = base_url
        self.api = httpx.Client(base_url=f"{base_url}/api/v1", timeout=30)

    def cli(self, *args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "nurture", *args],
            env=self.environ,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    def call(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.api.request(method, path, **kwargs)
        assert response.status_code == status, (method, path, response.text)
        return response.json() if response.content else None


@pytest.fixture
def nurture(db: Database, twilio: FakeTwilio, tmp_path: Path) -> Iterator[Nurture]:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
    environ.update(
        {
            "NURTURE_DATA_DIR": str(tmp_path / "data"),
            "NURTURE_DATABASE_URL": db.url,
            "NURTURE_SECRET_KEY": SECRET,
            "NURTURE_BASE_URL": base_url,
            "NURTURE_EMBEDDED_WORKER": "false",
            "NURTURE_SMS_URL": twilio.base_url,
            "NURTURE_SMS_FROM": "+15005550006",
        }
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "nurture", "serve", "--port", str(port), "--no-demo"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.2)
        app = Nurture(environ, base_url)
        app.cli("user", "create", "--email", "ops@example.com", "--role", "admin")
        token = app.cli("token", "create", "--user", "ops@example.com").stdout.strip()
        app.api.headers["Authorization"] = f"Bearer {token}"
        yield app
        app.api.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_sms_campaign_through_api_and_cli(nurture: Nurture, twilio: FakeTwilio, tmp_path: Path) -> None:
    n = nurture
    ana = n.call("POST", "/records/contact", 201, json={
        "name": "Ana", "mobile": "06 12 34 56 78", "country_code": "FR"})["id"]
    bo = n.call("POST", "/records/contact", 201, json={"name": "Bo", "mobile": "+44 7911 123456"})["id"]
    n.call("POST", "/records/contact", 201, json={"name": "Cy", "email": "cy@example.com"})  # no phone

    cid = n.call("POST", "/campaigns", 201, json={"name": "Spring SMS", "model": "contact"})["id"]
    sms = n.call("POST", f"/campaigns/{cid}/activities", 201,
                 json={"name": "Promo", "activity_type": "sms"})["id"]
    tagger = n.call("POST", "/server-actions", 201,
                    json={"name": "Clicked", "model": "contact", "add_tags": ["sms-clicked"]})["id"]
    n.call("POST", f"/campaigns/{cid}/activities", 201, json={
        "name": "On click", "activity_type": "action", "trigger_type": "sms_click",
        "parent_id": sms, "server_action_id": tagger})
    url = f"/campaigns/{cid}/activities/{sms}/sms-template"

    # no template yet; a broken one is refused with its line and column, nothing saved
    assert n.call("GET", url, 404)["error"]["field"] == "activity_id"
    bad = n.call("PUT", url, 422, json={"body": "Hi {{ record.name }}\n{{ record.nope }}"})
    assert bad["error"]["code"] == "invalid_template" and bad["error"]["field"] == "body"
    assert "line 2, column" in bad["error"]["message"] and "nope" in bad["error"]["message"]
    n.call("GET", url, 404)
    # the API validates and counts: a UCS-2 text is 70 characters a segment
    saved = n.call("PUT", url, json={"body": "Hi {{ record.name }} ✓", "opt_out": False})
    assert saved["segments"]["encoding"] == "ucs2" and saved["segments"]["segments"] == 1

    # the CLI sets the real text from a file (and refuses a broken one the same way)
    broken = tmp_path / "broken.txt"
    broken.write_text("Hi {{ record.name\n", encoding="utf-8")
    refused = n.cli("sms-template", "set", str(cid), str(sms), str(broken), ok=False)
    assert refused.returncode == 1 and "line 1, column" in refused.stderr
    text = tmp_path / "promo.txt"
    text.write_text("Hi {{ record.name }}, spring offer: https://shop.example.com/spring\n", encoding="utf-8")
    out = n.cli("sms-template", "set", str(cid), str(sms), str(text), "--opt-out").stdout
    assert "1 segment(s), gsm7" in out
    template = n.call("GET", url)
    assert template["body"] == "Hi {{ record.name }}, spring offer: https://shop.example.com/spring"
    assert template["opt_out"] is True and template["segments"]["encoding"] == "gsm7"
    assert n.cli("sms-template", "show", str(cid), str(sms)).stdout.startswith("Hi {{ record.name }}")
    preview = n.call("GET", f"{url}/preview", params={"record_id": ana})
    assert preview["body"].startswith("Hi Ana, spring offer: ")

    # starting enrols at once, in the request
    n.call("POST", f"/campaigns/{cid}/start")
    participants = n.call("GET", "/participants", params={"campaign_id": cid})["items"]
    assert len(participants) == 3

    sent_at = utcnow() + timedelta(minutes=1)
    assert "processed 2, rejected 0, canceled 1" in n.cli("tick", "--now", sent_at.isoformat()).stdout
    by_to = {m.to: m for m in twilio.messages.values()}
    assert set(by_to) == {"+33612345678", "+447911123456"}  # E.164; Cy has no number
    for to, name in (("+33612345678", "Ana"), ("+447911123456", "Bo")):
        body = by_to[to].body
        assert body.startswith(f"Hi {name}, spring offer: {n.base_url}/t/s/"), body
        assert body.endswith("\nReply STOP to opt out") and "shop.example.com" not in body
        assert by_to[to].sender == "+15005550006"

    outbox = n.call("GET", "/sms-messages", params={"campaign_id": cid})["items"]
    assert {(m["to_number"], m["state"]) for m in outbox} == {
        ("+33612345678", "sent"), ("+447911123456", "sent")}
    ana_msg = next(m for m in outbox if m["to_number"] == "+33612345678")
    bo_msg = next(m for m in outbox if m["to_number"] == "+447911123456")
    assert ana_msg["provider"] == "http" and ana_msg["provider_id"] == by_to["+33612345678"].sid
    assert ana_msg["body"] == by_to["+33612345678"].body and ana_msg["encoding"] == "gsm7"

    # status callbacks from the provider to the server: one delivered, one failed (a bounce)
    assert twilio.send_status(ana_msg["provider_id"], "delivered") == 204
    assert twilio.send_status(bo_msg["provider_id"], "undelivered", error_code="30003") == 204
    assert twilio.send_status(bo_msg["provider_id"], "delivered", forge=True) == 403
    ana_msg = n.call("GET", f"/sms-messages/{ana_msg['id']}")
    assert ana_msg["delivered_at"] is not None
    bo_msg = n.call("GET", f"/sms-messages/{bo_msg['id']}")
    assert bo_msg["state"] == "failed" and "30003" in (bo_msg["failure_reason"] or "")

    # Ana clicks her short link: a redirect to the stored URL, then the sms_click child runs
    (link,) = re.findall(re.escape(n.base_url) + r"/t/s/[A-Za-z0-9_-]+", by_to["+33612345678"].body)
    clicked = httpx.get(link, headers={"User-Agent": HUMAN_UA}, follow_redirects=False)
    assert clicked.status_code == 302
    assert clicked.headers["location"].startswith("https://shop.example.com/spring")
    n.cli("tick", "--now", (sent_at + timedelta(minutes=5)).isoformat())
    tagged = n.call("GET", "/records/contact", params={"filter": '[["tags.name", "=", "sms-clicked"]]'})
    assert [r["id"] for r in tagged["items"]] == [ana]
    assert bo not in [r["id"] for r in tagged["items"]]

    metrics = n.call("GET", f"/campaigns/{cid}/metrics")
    assert metrics["sms"] == {"sent": 2, "delivered": 1, "clicked": 1, "bounced": 1}
    (promo,) = [a for a in metrics["activities"] if a["activity_id"] == sms]
    assert (promo["sent"], promo["delivered"], promo["clicked"], promo["bounced"]) == (2, 1, 1, 1)
    assert all(a["delivered"] is None for a in metrics["activities"] if a["activity_type"] != "sms")

    # a duplicated campaign keeps the text; deleting the template leaves the activity bare
    copy = n.call("POST", f"/campaigns/{cid}/duplicate", 201)
    (copy_sms,) = [a["id"] for a in copy["activities"] if a["activity_type"] == "sms"]
    copied = n.call("GET", f"/campaigns/{copy['id']}/activities/{copy_sms}/sms-template")
    assert copied["body"] == template["body"] and copied["opt_out"] is True
    assert copied["id"] != template["id"]
    n.call("DELETE", f"/campaigns/{copy['id']}/activities/{copy_sms}/sms-template", 204)
    n.call("GET", f"/campaigns/{copy['id']}/activities/{copy_sms}/sms-template", 404)
    assert n.call("GET", url)["body"] == template["body"]
