"""Web UI: filters screens (issue 14)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from nurture.web.security import csrf_protect

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)
