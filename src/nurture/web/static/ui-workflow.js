// Workflow tree and activity dialog (no inline scripts: behaviour is attached here).
"use strict";

(function () {
  function debounce(fn, ms) {
    let timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  // --- the activity dialog --------------------------------------------------------------
  function activityForm() { return document.getElementById("activity-form"); }

  function showType(form) {
    const checked = form.querySelector("input[name=activity_type]:checked");
    const type = checked ? checked.value : "";
    form.dataset.type = type;
    form.querySelectorAll("[data-for]").forEach(function (section) {
      section.hidden = section.dataset.for.split(" ").indexOf(type) < 0;
    });
    if (type === "email") refreshEmail();
    if (type === "sms") refreshSms();
  }

  // Triggers offered follow the parent's type (the server checks it again on save).
  function filterTriggers(form) {
    const parent = form.querySelector("#f-parent_id");
    const trigger = form.querySelector("#f-trigger_type");
    if (!parent || !trigger) return;
    const option = parent.options[parent.selectedIndex];
    const parentType = option ? option.dataset.type : "";
    let firstAllowed = null;
    Array.prototype.forEach.call(trigger.options, function (o) {
      const wanted = o.dataset.parent;
      const allowed = parentType ? (wanted === "any" || wanted === parentType) : wanted === "none";
      o.disabled = !allowed;
      o.hidden = !allowed;
      if (allowed && firstAllowed === null) firstAllowed = o;
    });
    const current = trigger.options[trigger.selectedIndex];
    if ((!current || current.disabled) && firstAllowed) firstAllowed.selected = true;
  }

  const refreshEmail = debounce(function () {
    const form = activityForm();
    const target = document.getElementById("preview-form");
    if (!form || !target || form.dataset.type !== "email") return;
    target.querySelectorAll("input[data-copy]").forEach(function (el) { el.remove(); });
    ["subject", "preview", "body_html", "record_id"].forEach(function (name) {
      const source = form.elements.namedItem(name);
      if (!source) return;
      const copy = document.createElement("input");
      copy.type = "hidden";
      copy.name = name;
      copy.value = source.value;
      copy.setAttribute("data-copy", "");
      target.appendChild(copy);
    });
    target.submit();
  }, 500);

  function refreshSms() {
    const body = document.getElementById("f-sms_body");
    if (body && window.htmx) window.htmx.trigger(body, "nurture:refresh");
  }

  // Insert a {{ record.… }} placeholder at the cursor of the target field.
  let lastField = {};
  document.addEventListener("focusin", function (event) {
    const el = event.target;
    if (!el || !el.closest || !el.closest("#activity-form")) return;
    const section = el.closest(".ad-content");
    if (section && (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && el.type === "text"))) {
      lastField[section.dataset.for] = el.id;
    }
  });

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest(".ph-insert");
    if (button) {
      const select = document.getElementById(button.dataset.select);
      const section = button.closest(".ad-content");
      const targetId = (section && lastField[section.dataset.for]) || button.dataset.target;
      const field = document.getElementById(targetId);
      if (!select || !field) return;
      const text = "{{ " + select.value + " }}";
      const start = field.selectionStart != null ? field.selectionStart : field.value.length;
      const end = field.selectionEnd != null ? field.selectionEnd : start;
      field.value = field.value.slice(0, start) + text + field.value.slice(end);
      field.focus();
      field.setSelectionRange(start + text.length, start + text.length);
      field.dispatchEvent(new Event("input", { bubbles: true }));
      return;
    }
    if (event.target.closest && event.target.closest(".ep-refresh")) refreshEmail();
    const close = event.target.closest && event.target.closest(".sa-close");
    if (close) {
      const dialog = close.closest("dialog");
      if (dialog) dialog.close();
    }
  });

  document.addEventListener("change", function (event) {
    const form = activityForm();
    if (!form || !form.contains(event.target)) return;
    const name = event.target.name;
    if (name === "activity_type") showType(form);
    else if (name === "parent_id") filterTriggers(form);
    else if (name === "record_id") { refreshEmail(); refreshSms(); }
    else if (name === "sms_opt_out") refreshSms();
    else if (name === "preview_width") {
      const stage = document.getElementById("email-stage");
      if (stage) stage.classList.toggle("mobile", event.target.value === "mobile");
    }
  });

  document.addEventListener("input", function (event) {
    const form = activityForm();
    if (!form || !form.contains(event.target)) return;
    if (["subject", "preview", "body_html"].indexOf(event.target.name) >= 0) refreshEmail();
  });

  // The record options changed after a search: preview with the first match.
  document.addEventListener("htmx:afterSwap", function (event) {
    const target = event.detail.target;
    if (!target) return;
    if (target.id === "f-record_id") {
      if (target.options.length > 1) target.selectedIndex = 1;
      refreshEmail();
      refreshSms();
    }
    if (target.id === "sa-dialog-body") {
      const dialog = document.getElementById("sa-dialog");
      if (dialog && !dialog.open) dialog.showModal();
      const first = target.querySelector("[aria-invalid=true]") || target.querySelector("input, select");
      if (first) first.focus();
    }
  });

  document.addEventListener("nurture:action-created", function () {
    const dialog = document.getElementById("sa-dialog");
    if (dialog && dialog.open) dialog.close();
  });

  document.addEventListener("DOMContentLoaded", function () {
    const form = activityForm();
    if (!form) return;
    filterTriggers(form);
    showType(form);
  });
})();
