"""The call-centre agent screen: one HTML page with a little JavaScript, no build step.

``GET /agent`` serves the page; it calls the same JSON endpoints any client would, with the
agent's own API key (call-centre channel): the profile and offers of a customer, and
``POST /v1/outcomes`` for the answer. Everything on the screen comes from those responses, so
the screen shows exactly what the API decides. The key stays in the browser tab
(``sessionStorage``); ``/agent?customer=ID#key=KEY`` fills both, and the fragment never reaches
a server log.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: The page loads only its own script and style sheet, and cannot be framed by another site.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)
def _page() -> str:
    return (STATIC_DIR / "agent.html").read_text(encoding="utf-8")


@router.get("/agent", response_class=HTMLResponse)
async def agent_screen() -> HTMLResponse:
    return HTMLResponse(_page(), headers=SECURITY_HEADERS)
