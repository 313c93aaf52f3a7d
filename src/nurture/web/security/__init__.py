"""Authentication, authorisation and hardening for the web server (FastAPI dependencies).

Routes declare what they need::

    @router.get("/api/v1/campaigns")
    def list_campaigns(user: CurrentUser = Depends(require("campaigns.read"))) -> ...

    @router.post("/campaigns/{id}/start", dependencies=[Depends(csrf_protect)])
    def start(user: CurrentUser = Depends(require("campaigns.write"))) -> ...

Credentials: ``Authorization: Bearer nrt_…`` (API) or the ``nurture_session`` cookie (UI).
The cookie holds a random session id signed with the secret key (HMAC-SHA256); the session
itself lives in the ``web_session`` table, so logging out, deactivating a user or changing a
password ends it at once on every worker, and its CSRF token is kept server-side.

:func:`~.install.install_security` adds the middlewares and exception handlers (security
headers, request size limit, error bodies without stack traces). The dependencies find the
database at ``request.app.state.runtime.db``.

Modules:

* :mod:`.config` — the app's security settings and what a request carries (database, client
  address, scheme);
* :mod:`.cookies` — signed cookie values and how cookies are set;
* :mod:`.auth` — the current user (bearer token or session cookie) and role checks;
* :mod:`.sessions` — signing in (password logins, rate limited by the accounts service) and out;
* :mod:`.csrf` — CSRF tokens and the check of state-changing browser requests;
* :mod:`.headers` — the security headers middleware (CSP, HSTS, …);
* :mod:`.limits` — the request body size limit;
* :mod:`.errors` — JSON error bodies and exception handlers (no tracebacks to clients);
* :mod:`.install` — :func:`~.install.install_security`, wiring all of it into an app.
"""
