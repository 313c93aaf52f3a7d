"""Security headers on every response: CSP (per path prefix), nosniff, frames, referrer, HSTS."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
HSTS = "max-age=31536000; includeSubDomains"


class SecurityHeadersMiddleware:
    """Adds CSP, nosniff, frame and referrer headers (and HSTS over HTTPS) to every response."""

    def __init__(
        self,
        app: ASGIApp,
        csp: str = DEFAULT_CSP,
        csp_overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.csp = csp
        self.csp_overrides = sorted((csp_overrides or {}).items(), key=lambda kv: -len(kv[0]))

    def _csp_for(self, path: str) -> str:
        for prefix, policy in self.csp_overrides:
            if path.startswith(prefix):
                return policy
        return self.csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self._csp_for(scope.get("path", ""))
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in header_items(csp, https):
                    if name.lower().encode("latin-1") not in present:
                        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def header_items(csp: str, https: bool) -> list[tuple[str, str]]:
    items = [("Content-Security-Policy", csp), *SECURITY_HEADERS.items()]
    if https:
        items.append(("Strict-Transport-Security", HSTS))
    return items
