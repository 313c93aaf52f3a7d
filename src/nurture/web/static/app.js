// Shared behaviour of the UI. No inline scripts (CSP script-src 'self'): attach here.
"use strict";

(function () {
  // The main menu's toggle on narrow screens.
  document.addEventListener("click", function (event) {
    const toggle = event.target.closest && event.target.closest(".nav-toggle");
    if (!toggle) return;
    const links = document.getElementById(toggle.getAttribute("aria-controls"));
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    if (links) links.classList.toggle("open", open);
  });

  // A form or button with data-confirm asks before it submits.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    const message = form.getAttribute && form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // htmx: ask too before requests from elements with data-confirm (hx-confirm needs no JS,
  // but this keeps one wording path for forms and buttons).
  document.addEventListener("htmx:confirm", function (event) {
    const el = event.detail.elt;
    const message = el && el.getAttribute && el.getAttribute("data-confirm");
    if (message && el.tagName !== "FORM") {
      event.preventDefault();
      if (window.confirm(message)) event.detail.issueRequest(true);
    }
  });

  // Error responses of htmx requests: show the message instead of silently doing nothing.
  document.addEventListener("htmx:responseError", function (event) {
    const box = document.getElementById("flashes");
    if (!box) return;
    let text = "The server refused the request (" + event.detail.xhr.status + ").";
    try {
      const body = JSON.parse(event.detail.xhr.responseText);
      if (body && body.message) text = body.message;
      else if (body && body.error && body.error.message) text = body.error.message;
    } catch (e) { /* an HTML error page */ }
    const p = document.createElement("p");
    p.className = "flash flash-error";
    p.setAttribute("role", "alert");
    p.textContent = text;
    box.appendChild(p);
  });
})();
