"""Migration 0008: webhook actions saved without a secret (they signed with the master key)
get a generated secret of their own; other actions and given secrets are left alone."""

from __future__ import annotations

import json
from pathlib import Path

from alembic import command
from sqlalchemy import text

from nurture.db import Database, migrate


def test_existing_webhook_actions_get_their_own_secret(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    config = migrate.alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0007")
        for name, kind, payload in (
            ("old hook", "webhook", {"url": "https://a.example.com/"}),
            ("own secret", "webhook", {"url": "https://b.example.com/", "secret": "mine-0123456789"}),
            ("tagger", "update_record", {"set": {}, "add_tags": ["x"]}),
        ):
            conn.execute(
                text(
                    "INSERT INTO server_action (name, model, action_type, payload, created_at) "
                    "VALUES (:n, 'contact', :k, :p, '2026-01-01 00:00:00')"
                ),
                {"n": name, "k": kind, "p": json.dumps(payload)},
            )
    db.migrate()
    with db.engine.connect() as conn:
        rows = {n: json.loads(p) for n, p in conn.execute(text("SELECT name, payload FROM server_action"))}
    assert len(rows["old hook"]["secret"]) >= 40
    assert rows["own secret"]["secret"] == "mine-0123456789"
    assert "secret" not in rows["tagger"]
    db.dispose()
