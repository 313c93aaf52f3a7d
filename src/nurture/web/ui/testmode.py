"""Web UI: test mode (issue 14, screen 7; SPEC §5 "Test mode").

``/campaigns/{id}/test`` chooses (or creates) the record; ``/tests/{pid}`` is the test page:
the record, the start time and the workflow with each step's state and date, *Run* on
scheduled steps, simulated recipient events on sent messages, the message as sent, *Stop*.
The steps are an htmx fragment that polls while the test runs, so a step the worker changes
shows up without a reload; a sent step links to the message as sent (the participant
screens' message page: test participants are participants).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from sqlalchemy.orm import Session

from nurture.audience.search import search_records
from nurture.campaigns import campaigns
from nurture.campaigns.describe import trigger_words, with_depth
from nurture.engine import testmode
from nurture.errors import NurtureError
from nurture.records import service as records
from nurture.records.catalog import REGISTRY
from nurture.reporting.timeline import TimelineStep, timeline
from nurture.web.api.common import Now
from nurture.web.security.csrf import csrf_protect
from nurture.web.ui.render import (
    UiReadSession,
    UiUser,
    database,
    is_htmx,
    redirect,
    render,
    ui_require,
)

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)
Writer = Annotated[Any, ui_require("campaigns.write")]

#: the events a person can simulate on a sent message, by channel: (event, button label)
EVENTS = {
    "email": (("open", "Opened"), ("click", "Clicked"), ("reply", "Replied"), ("bounce", "Bounced")),
    "sms": (("sms_click", "Clicked"), ("sms_bounce", "Bounced")),
}
#: fields a marketer fills in to create a record to test on, when the model has them
NEW_RECORD_FIELDS = ("name", "email", "phone")


def _record_label(session: Session, model: str, res_id: int) -> dict[str, Any]:
    mdef = REGISTRY.get(model)
    try:
        values = records.read_record(session=session, model=model, record_id=res_id)
    except NurtureError:
        return {"label": f"{mdef.label} #{res_id} (deleted)", "email": None, "phone": None}
    return {
        "label": str(values.get(mdef.rec_name) or f"{mdef.label} #{res_id}"),
        "email": values.get("email"),
        "phone": values.get("phone") or values.get("mobile"),
    }


# --- launching a test ----------------------------------------------------------------------


def _launch_context(session: Session, campaign_id: int, now: Any, q: str) -> dict[str, Any]:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    mdef = REGISTRY.get(campaign.model)
    return {
        "campaign": campaign,
        "model_label": mdef.label,
        "new_fields": [f for f in NEW_RECORD_FIELDS if f in mdef.fields],
        "q": q,
        "results": search_records(session, model=campaign.model, text=q, now=now, limit=10),
        "breadcrumbs": [
            ("Campaigns", "/campaigns"),
            (campaign.name, f"/campaigns/{campaign.id}"),
            ("Launch a test", None),
        ],
    }


@router.get("/campaigns/{campaign_id}/test")
def launch_page(
    request: Request, user: UiUser, session: UiReadSession, now: Now, campaign_id: int, q: str = ""
) -> Response:
    context = _launch_context(session, campaign_id, now, q)
    if is_htmx(request) and request.headers.get("hx-target") == "test-records":
        return render(request, "ui/testmode/_records.html", context)
    return render(request, "ui/testmode/launch.html", {**context, "error": None, "values": {}})


def _launch(request: Request, now: Any, campaign_id: int, res_id: int) -> Response:
    with database(request).transaction() as s:
        participant = testmode.launch_test(s, campaign_id=campaign_id, res_id=res_id, now=now)
        pid = participant.id
    return redirect(request, f"/tests/{pid}", "Test launched: run the steps below.")


@router.post("/campaigns/{campaign_id}/test")
def launch_on_record(
    request: Request,
    user: Writer,
    now: Now,
    campaign_id: int,
    res_id: Annotated[int, Form(ge=1, le=2**63 - 1)],
) -> Response:
    return _launch(request, now, campaign_id, res_id)


@router.post("/campaigns/{campaign_id}/test/new")
def launch_on_new_record(
    request: Request,
    user: Writer,
    now: Now,
    campaign_id: int,
    name: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=254)] = "",
    phone: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    db = database(request)
    given = {"name": name, "email": email, "phone": phone}
    try:
        with db.transaction() as s:
            campaign = campaigns.get_campaign(session=s, campaign_id=campaign_id)
            mdef = REGISTRY.get(campaign.model)
            values = {k: v.strip() for k, v in given.items() if k in mdef.fields and v.strip()}
            res_id = records.create_record(session=s, model=campaign.model, values=values, now=now)
            participant = testmode.launch_test(s, campaign_id=campaign_id, res_id=res_id, now=now)
            pid = participant.id
    except NurtureError as exc:
        with db.read() as s:
            context = _launch_context(s, campaign_id, now, "")
            return render(
                request,
                "ui/testmode/launch.html",
                {**context, "error": exc, "values": given},
                status_code=422,
            )
    return redirect(request, f"/tests/{pid}", "Record created and test launched.")


# --- the test page -------------------------------------------------------------------------


def _test_context(session: Session, participant_id: int, now: Any) -> dict[str, Any]:
    participant = testmode.get_test(session, participant_id=participant_id)
    campaign = campaigns.get_campaign(session=session, campaign_id=participant.campaign_id)
    traces: dict[int, list[TimelineStep]] = {}
    for step in timeline(session, participant_id=participant.id):
        traces.setdefault(step.activity_id, []).append(step)
    steps = [
        {
            "activity": activity,
            "depth": depth,
            "trigger": trigger_words(activity),
            "traces": traces.get(activity.id, []),
        }
        for activity, depth in with_depth(campaign.activities)
    ]
    return {
        "participant": participant,
        "campaign": campaign,
        "record": _record_label(session, participant.model, participant.res_id),
        "in_audience": testmode.matches_campaign_filter(session, participant=participant, now=now),
        "model_label": REGISTRY.get(participant.model).label,
        "steps": steps,
        "messages_url": f"/campaigns/{campaign.id}/participants/{participant.id}/messages",
        "events": EVENTS,
        "breadcrumbs": [
            ("Campaigns", "/campaigns"),
            (campaign.name, f"/campaigns/{campaign.id}"),
            (f"Test #{participant.id}", None),
        ],
    }


@router.get("/tests/{participant_id}")
def test_page(
    request: Request, user: UiUser, session: UiReadSession, now: Now, participant_id: int
) -> Response:
    return render(request, "ui/testmode/test.html", _test_context(session, participant_id, now))


@router.get("/tests/{participant_id}/steps")
def test_steps(
    request: Request, user: UiUser, session: UiReadSession, now: Now, participant_id: int
) -> Response:
    return render(request, "ui/testmode/_steps.html", _test_context(session, participant_id, now))


def _after_change(request: Request, participant_id: int, message: str | None) -> Response:
    if is_htmx(request):
        with database(request).read() as s:
            context = _test_context(s, participant_id, request.app.state.security.clock())
            context["notice"] = message
            return render(request, "ui/testmode/_steps.html", context)
    return redirect(request, f"/tests/{participant_id}", message)


def _step_participant(request: Request, trace_id: int) -> int:
    with database(request).read() as s:
        return testmode.test_participant_of(s, trace_id=trace_id)


@router.post("/tests/steps/{trace_id}/run")
def run_step(request: Request, user: Writer, now: Now, trace_id: int) -> Response:
    participant_id = _step_participant(request, trace_id)
    with database(request).transaction() as s:
        result = testmode.run_step(s, trace_id=trace_id, now=now)
    words = [f"{n} {state}" for state, n in (
        ("processed", result.processed), ("rejected", result.rejected),
        ("canceled", result.canceled), ("error", result.error),
    ) if n]
    return _after_change(request, participant_id, "Step run: " + (", ".join(words) or "nothing to do"))


@router.post("/tests/steps/{trace_id}/events")
def simulate_event(
    request: Request,
    user: Writer,
    now: Now,
    trace_id: int,
    event: Annotated[str, Form(max_length=20)],
) -> Response:
    allowed = {e for events in EVENTS.values() for e, _label in events}
    if event not in allowed:
        raise HTTPException(status_code=422, detail={"message": f"unknown event {event!r}", "field": "event"})
    participant_id = _step_participant(request, trace_id)
    with database(request).transaction() as s:
        dated = testmode.simulate_event(s, trace_id=trace_id, event=event, now=now)
    label = event.replace("sms_", "SMS ").replace("_", " ")
    return _after_change(
        request, participant_id, f"Simulated “{label}”: {dated} waiting step(s) scheduled."
    )


@router.post("/tests/{participant_id}/stop")
def stop(request: Request, user: Writer, now: Now, participant_id: int) -> Response:
    with database(request).transaction() as s:
        testmode.stop_test(s, participant_id=participant_id, now=now)
    return _after_change(request, participant_id, "Test stopped.")
