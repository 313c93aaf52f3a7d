"""Web UI: the message previews of the activity dialog (issue 14, screen 6).

Routes:

* ``POST /campaigns/{id}/activities/preview/email`` — the email rendered for a record, as a
  document for the preview ``<iframe sandbox>`` (its own strict CSP);
* ``POST /campaigns/{id}/activities/preview/sms`` — the SMS counter and preview (htmx
  fragment).

Both read the dialog's unsaved fields; nothing is written.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import escape
from sqlalchemy.orm import Session

from nurture import templating as email_templates
from nurture.campaigns import campaigns
from nurture.channels.sms import render as sms_render
from nurture.channels.sms.context import sms_context
from nurture.channels.sms.segments import count_segments
from nurture.errors import NurtureError
from nurture.records import service as records
from nurture.templating import TemplateRenderError, TemplateValidationError
from nurture.web.security.csrf import csrf_protect
from nurture.web.ui.render import UiReadSession, UiUser, form_values, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)

#: the preview document's own policy: no script at all, the email's inline styles allowed
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: https: http:; "
    "font-src https: data:; frame-ancestors 'self'; sandbox"
)


def _preview_page(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        body,
        status_code=status_code,
        headers={
            "Content-Security-Policy": PREVIEW_CSP,
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "no-store",
        },
    )


def _problem_page(title: str, problems: list[str]) -> str:
    items = "".join(f"<li>{escape(p)}</li>" for p in problems)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Preview</title></head>'
        '<body style="font:15px system-ui,sans-serif;color:#7a1a12;padding:1rem">'
        f"<h2 style=\"font-size:1.05rem\">{escape(title)}</h2><ul>{items}</ul></body></html>"
    )


def _record(session: Session, model: str, raw: str | None) -> Any:
    if raw and raw.strip().isdigit():
        return records.get_record(session=session, model=model, record_id=int(raw))
    return None


@router.post("/campaigns/{campaign_id}/activities/preview/email")
async def preview_email(
    request: Request, session: UiReadSession, user: UiUser, campaign_id: int
) -> Response:
    values = form_values(await request.form())
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    try:
        record = _record(session, campaign.model, values.get("record_id"))
        rendered = email_templates.render_preview(
            campaign.model,
            email_templates.EmailTemplate(
                subject=values.get("subject") or " ",
                html=values.get("body_html") or "",
                preview=values.get("preview") or "",
            ),
            record,
            context={"unsubscribe_url": "#unsubscribe", "view_url": "#view"},
        )
    except TemplateValidationError as exc:
        problems = [
            f"{'Body' if p.field == 'html' else p.field.title()}, line {p.line}, column {p.column}: {p.message}"
            for p in exc.problems
        ]
        return _preview_page(_problem_page("This template has problems", problems))
    except (TemplateRenderError, NurtureError) as exc:
        return _preview_page(_problem_page("The preview could not be rendered", [exc.message]))
    return _preview_page(rendered.html)


@router.post("/campaigns/{campaign_id}/activities/preview/sms")
async def preview_sms(
    request: Request, session: UiReadSession, user: UiUser, campaign_id: int
) -> Response:
    values = form_values(await request.form())
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    body = values.get("sms_body") or ""
    source = count_segments(body)
    problems: list[str] = []
    rendered = None
    try:
        record = _record(session, campaign.model, values.get("record_id"))
        compiled = sms_render.compile_sms(campaign.model, body)
        opt_out = sms_context().opt_out_text if values.get("sms_opt_out") else None
        rendered = compiled.render(record, opt_out_text=opt_out)
    except TemplateValidationError as exc:
        problems = [f"Line {p.line}, column {p.column}: {p.message}" for p in exc.problems]
    except (TemplateRenderError, NurtureError) as exc:
        problems = [exc.message]
    return render(
        request,
        "ui/workflow/_sms_preview.html",
        {"source": source, "rendered": rendered, "problems": problems},
    )
