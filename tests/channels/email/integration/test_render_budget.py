"""The render budget at send time: a template that goes over it for one record fails only
that record's trace, with the reason, and the batch goes on (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select

from nurture.engine.models import Trace
from nurture.records.models import Contact, Tag
from nurture.worker.loop import tick

from .conftest import T0, Env, campaign_with_email

# 300 x 300 literal items pass the save-time check (90,300 iterations); each tag of the
# record runs them once more, so a record with two tags goes over 100,000.
_ITEMS = ",".join(["1"] * 300)
HTML = (
    "<p>Hi {{ record.name }}</p>{% for t in record.tags %}{% for a in [" + _ITEMS + "] %}"
    "{% for b in [" + _ITEMS + "] %}{% endfor %}{% endfor %}{% endfor %}"
)


def test_over_budget_message_fails_only_its_own_trace(env: Env) -> None:
    _cid, mail, _kids, ids = campaign_with_email(
        env.db,
        [{"name": "Plain", "email": "plain@example.org"}, {"name": "Tagged", "email": "tagged@example.org"}],
        html=HTML,
        children=(),
    )
    with env.db.transaction() as s:
        tagged = s.get(Contact, ids[1])
        assert tagged is not None
        tagged.tags = [Tag(name="one", color=0), Tag(name="two", color=0)]
    tick(env.db, now=T0)
    with env.db.read() as s:
        got = {
            t.res_id: (t.state, t.state_message or "")
            for t in s.scalars(select(Trace).where(Trace.activity_id == mail))
        }
    assert got[ids[0]][0] == "processed"
    state, message = got[ids[1]]
    assert state == "error"
    assert "render budget" in message and "100000 iterations" in message
