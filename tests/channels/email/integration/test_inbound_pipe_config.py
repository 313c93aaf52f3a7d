"""``nurture inbound`` as the MTA runs it (a real process, its own working directory): it
refuses to run (exit 75, EX_TEMPFAIL: the MTA keeps the message and retries) unless it has
the server's database and secret key, and it never generates a key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from nurture.engine.models import Trace
from nurture.tracking.tokens import TokenSigner, message_token
from nurture.worker.loop import tick

from .conftest import T0, Env, campaign_with_email, corpus

EX_TEMPFAIL = 75


def _pipe(message: bytes, cwd: Path, **variables: str) -> subprocess.CompletedProcess[bytes]:
    """``nurture inbound`` with only ``variables`` as Nurture settings (as from master.cf)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
    environ.update(variables)
    return subprocess.run(
        [sys.executable, "-m", "nurture", "inbound"],
        input=message,
        cwd=cwd,
        env=environ,
        capture_output=True,
        timeout=120,
    )


def _sent_reply(env: Env) -> tuple[int, bytes]:
    _, mail, _, _ = campaign_with_email(env.db, [{"name": "Dan", "email": "dan@example.org"}])
    tick(env.db, now=T0)
    with env.db.read() as s:
        trace_id = s.scalars(select(Trace.id).where(Trace.activity_id == mail)).one()
    token = message_token(TokenSigner.from_settings(env.settings), trace_id)
    return trace_id, corpus("human_reply.eml", token)


def _replied(env: Env, trace_id: int) -> bool:
    with env.db.read() as s:
        trace = s.get(Trace, trace_id)
        assert trace is not None
        return trace.replied_at is not None


def test_unconfigured_pipe_exits_75_and_generates_no_key(env: Env, tmp_path: Path) -> None:
    trace_id, reply = _sent_reply(env)
    cwd = tmp_path / "spool"
    cwd.mkdir()

    bare = _pipe(reply, cwd)
    assert bare.returncode == EX_TEMPFAIL, bare.stderr
    stderr = bare.stderr.decode()
    assert "NURTURE_DATABASE_URL and NURTURE_SECRET_KEY not set" in stderr
    assert "EX_TEMPFAIL" in stderr

    no_key = _pipe(reply, cwd, NURTURE_DATABASE_URL=env.db.url)
    assert no_key.returncode == EX_TEMPFAIL
    assert "NURTURE_SECRET_KEY not set" in no_key.stderr.decode()

    no_db = _pipe(reply, cwd, NURTURE_SECRET_KEY=env.settings.secret_key)
    assert no_db.returncode == EX_TEMPFAIL
    assert "NURTURE_DATABASE_URL not set" in no_db.stderr.decode()

    # nothing written under the pipe's working directory: no ./data, no key, no database
    assert list(cwd.iterdir()) == []
    assert not _replied(env, trace_id)


def test_a_key_that_cannot_verify_the_servers_tokens_exits_75(env: Env, tmp_path: Path) -> None:
    trace_id, reply = _sent_reply(env)
    wrong = _pipe(
        reply, tmp_path, NURTURE_DATABASE_URL=env.db.url, NURTURE_SECRET_KEY="another-key-0123456789abcdef"
    )
    assert wrong.returncode == EX_TEMPFAIL
    assert "NURTURE_SECRET_KEY cannot verify the tokens" in wrong.stderr.decode()
    assert not _replied(env, trace_id)


def test_missing_or_unmigrated_database_exits_75(env: Env, tmp_path: Path) -> None:
    _, reply = _sent_reply(env)
    key = env.settings.secret_key
    missing = tmp_path / "nowhere.db"
    result = _pipe(reply, tmp_path, NURTURE_DATABASE_URL=f"sqlite:///{missing}", NURTURE_SECRET_KEY=key)
    assert result.returncode == EX_TEMPFAIL
    assert f"no database file {missing}" in result.stderr.decode()
    assert not missing.exists()  # not created by the attempt

    empty = tmp_path / "empty.db"
    empty.touch()
    result = _pipe(reply, tmp_path, NURTURE_DATABASE_URL=f"sqlite:///{empty}", NURTURE_SECRET_KEY=key)
    assert result.returncode == EX_TEMPFAIL
    assert "not migrated" in result.stderr.decode()


def test_configured_through_an_env_file_the_reply_is_recorded(env: Env, tmp_path: Path) -> None:
    """The README's Postfix setup: only NURTURE_CONFIG_FILE in the pipe's environment."""
    trace_id, reply = _sent_reply(env)
    env_file = tmp_path / "nurture.env"
    env_file.write_text(
        "# /etc/nurture/nurture.env\n"
        f"NURTURE_DATABASE_URL={env.db.url}\n"
        f"NURTURE_SECRET_KEY={env.settings.secret_key}\n"
        f"NURTURE_MAIL_DOMAIN={env.settings.extra['NURTURE_MAIL_DOMAIN']}\n",
        encoding="utf-8",
    )
    cwd = tmp_path / "spool"
    cwd.mkdir()
    result = _pipe(reply, cwd, NURTURE_CONFIG_FILE=str(env_file))
    assert result.returncode == 0, result.stderr
    assert f"reply trace={trace_id}" in result.stderr.decode()
    assert _replied(env, trace_id)
    assert list(cwd.iterdir()) == []
