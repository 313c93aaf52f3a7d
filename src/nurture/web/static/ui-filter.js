// The filter builder (templates/ui/filters/_builder.html). No inline scripts (CSP):
// every .filter-builder on the page is brought to life here.
//
// The rules are drawn in the browser from the editor tree the server returns for the
// domain (POST /ui/filters/{model}/tree); the fields of each model along a relation path
// come from GET /ui/filters/{model}/fields?path=…, related records to pick from
// GET /ui/filters/{model}/related, #records from POST /ui/filters/{model}/count and the
// "selected records" dialog from POST /ui/filters/{model}/records. Every check of a
// filter happens on the server (nurture.audience); this file only draws and serialises.
"use strict";

(function () {
  const OPERATOR_LABELS = {
    "=": "is equal to",
    "!=": "is not equal to",
    "ilike": "contains",
    "not ilike": "does not contain",
    "like": "contains (case-sensitive)",
    "not like": "does not contain (case-sensitive)",
    "=ilike": "matches the pattern",
    "=like": "matches the pattern (case-sensitive)",
    "in": "is in",
    "not in": "is not in",
    "<": "is lower than",
    "<=": "is lower than or equal to",
    ">": "is greater than",
    ">=": "is greater than or equal to",
    "is set": "is set",
    "is not set": "is not set",
  };
  const DATE_LABELS = { "<": "is before", "<=": "is on or before", ">": "is after", ">=": "is on or after" };
  const RELATION_LABELS = { "=": "is", "!=": "is not", "ilike": "name contains", "not ilike": "name does not contain" };
  const BOOLEAN_LABELS = { "=": "is", "!=": "is not" };
  const UNITS = [["h", "hours"], ["d", "days"], ["w", "weeks"], ["m", "months"]];
  const NO_VALUE = ["is set", "is not set"];
  const LIST_OPERATORS = ["in", "not in"];
  const RELATION_TYPES = ["many2one", "one2many", "many2many"];

  let uid = 0;

  function csrfHeaders() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}");
    } catch (e) {
      return {};
    }
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(function ([key, value]) {
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    });
    (children || []).forEach(function (child) {
      if (child) node.append(child);
    });
    return node;
  }

  function formatNumber(n) {
    return Number(n).toLocaleString("en-US");
  }

  // The domain of an editor tree (prefix notation, what nurture.audience.tree_to_domain gives).
  function toDomain(node) {
    if (node.type === "rule") {
      const leaf = [node.field, node.operator, node.value === undefined ? null : node.value];
      return node.negate ? ["!", leaf] : [leaf];
    }
    const parts = node.children.map(toDomain).filter(function (p) { return p.length; });
    if (!parts.length) return [];
    let out = [];
    for (let i = 1; i < parts.length; i++) out.push(node.match === "any" ? "|" : "&");
    parts.forEach(function (p) { out = out.concat(p); });
    return node.negate ? ["!"].concat(out) : out;
  }

  // One term a line: readable in the code view, still plain JSON.
  function prettyDomain(domain) {
    if (!domain.length) return "[]";
    const lines = domain.map(function (item) {
      if (!Array.isArray(item)) return JSON.stringify(item);
      return "[" + item.map(function (v) { return JSON.stringify(v); }).join(", ") + "]";
    });
    return "[\n  " + lines.join(",\n  ") + "\n]";
  }

  function Builder(root) {
    this.root = root;
    this.model = root.dataset.model;
    this.name = root.dataset.name;
    this.baseDomain = root.dataset.baseDomain || "";
    this.includeArchived = root.dataset.includeArchived === "true";
    this.readonly = root.dataset.readonly === "true";
    this.value = root.querySelector("[data-fb-value]");
    this.code = root.querySelector("[data-fb-code]");
    this.codeError = root.querySelector("[data-fb-code-error]");
    this.treeBox = root.querySelector("[data-fb-tree]");
    this.status = root.querySelector("[data-fb-status]");
    this.countBox = root.querySelector("[data-fb-count]");
    this.countUnit = root.querySelector(".fb-count-unit");
    this.dialog = root.querySelector("[data-fb-dialog]");
    this.dialogBody = root.querySelector("[data-fb-dialog-body]");
    this.tree = { type: "group", match: "all", negate: false, children: [] };
    this.fields = new Map(); // relation path -> Promise of {model, label, fields}
    this.loaded = new Map(); // relation path -> {model, label, fields} once loaded
    this.labels = new Map(); // "path|id" -> record name
    this.countTimer = null;
    this.codeTimer = null;
    this.countSeq = 0;
    this.codeSeq = 0;
    this.prefix = "fb" + (++uid);
    // The code view is the submitted field without JavaScript; with it, the hidden input is.
    this.code.removeAttribute("name");
    this.value.setAttribute("name", this.name);
    this.value.value = this.code.value;
    this.bind();
    this.loadCode(this.code.value, true);
  }

  Builder.prototype.bind = function () {
    const self = this;
    this.code.addEventListener("input", function () {
      self.value.value = self.code.value; // what is saved is what the code view shows
      clearTimeout(self.codeTimer);
      self.codeTimer = setTimeout(function () { self.loadCode(self.code.value, false); }, 400);
    });
    this.code.addEventListener("change", function () {
      clearTimeout(self.codeTimer);
      self.loadCode(self.code.value, false, true);
    });
    this.root.querySelector("[data-fb-records]").addEventListener("click", function () {
      self.showRecords();
    });
    this.root.querySelector("[data-fb-close]").addEventListener("click", function () {
      self.dialog.close();
    });
    this.dialog.addEventListener("click", function (event) {
      if (event.target === self.dialog) self.dialog.close(); // a click on the backdrop
    });
  };

  Builder.prototype.post = function (what, params, signal) {
    const body = new URLSearchParams(params);
    return fetch("/ui/filters/" + encodeURIComponent(this.model) + "/" + what, {
      method: "POST",
      body: body,
      headers: Object.assign({ "Accept": "application/json" }, csrfHeaders()),
      credentials: "same-origin",
      signal: signal,
    });
  };

  Builder.prototype.fieldsAt = function (path) {
    const self = this;
    if (!this.fields.has(path)) {
      const url = "/ui/filters/" + encodeURIComponent(this.model) + "/fields?path=" + encodeURIComponent(path);
      const promise = fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          if (data.error) throw new Error(data.error.message);
          self.loaded.set(path, data);
          return data;
        });
      promise.catch(function () { self.fields.delete(path); });
      this.fields.set(path, promise);
    }
    return this.fields.get(path);
  };

  // --- code view -> tree -------------------------------------------------------------------

  Builder.prototype.loadCode = function (text, first, tidy) {
    const self = this;
    const seq = ++this.codeSeq;
    return this.post("tree", { domain: text })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (seq !== self.codeSeq) return null;
        if (data.error) {
          self.showCodeError(data.error);
          if (first) self.render();
          return null;
        }
        self.hideCodeError();
        self.tree = data.tree;
        self.value.value = JSON.stringify(data.domain);
        if (tidy || first) self.code.value = prettyDomain(data.domain);
        return self.prepare().then(function () {
          self.render();
          self.scheduleCount(first ? 0 : 250);
        });
      })
      .catch(function (error) { self.setStatus("Could not read the filter: " + error.message, true); });
  };

  Builder.prototype.showCodeError = function (error) {
    this.codeError.textContent = error.message;
    this.codeError.hidden = false;
    this.code.setAttribute("aria-invalid", "true");
    this.code.setAttribute("aria-describedby", this.codeError.id);
    this.root.querySelector(".fb-code").open = true;
    this.treeBox.classList.add("fb-stale");
    this.countBox.textContent = "–";
    this.setStatus("The code is not a valid filter; the rules above show the last valid one.", true);
  };

  Builder.prototype.hideCodeError = function () {
    this.codeError.hidden = true;
    this.codeError.textContent = "";
    this.code.removeAttribute("aria-invalid");
    this.code.removeAttribute("aria-describedby");
    this.treeBox.classList.remove("fb-stale");
  };

  // Fetch what drawing the tree needs: the fields along each rule's path, the names of
  // related records a rule holds by id.
  Builder.prototype.prepare = function () {
    const self = this;
    const waits = [this.fieldsAt("")];
    const labelWants = new Map();
    (function walk(node) {
      if (node.type === "group") return node.children.forEach(walk);
      const parts = String(node.field).split(".");
      for (let i = 1; i < parts.length; i++) waits.push(self.fieldsAt(parts.slice(0, i).join(".")));
      const ids = (Array.isArray(node.value) ? node.value : [node.value]).filter(function (v) {
        return Number.isInteger(v) && !self.labels.has(node.field + "|" + v);
      });
      if (ids.length) labelWants.set(node.field, (labelWants.get(node.field) || []).concat(ids));
    })(this.tree);
    return Promise.allSettled(waits).then(function () {
      const lookups = [];
      labelWants.forEach(function (ids, path) {
        const info = self.fieldInfo(path);
        if (!info || RELATION_TYPES.indexOf(info.type) < 0) return;
        const url = "/ui/filters/" + encodeURIComponent(self.model) + "/related?path=" +
          encodeURIComponent(path) + "&ids=" + ids.join(",");
        lookups.push(fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); })
          .then(function (rows) {
            if (Array.isArray(rows)) rows.forEach(function (row) { self.labels.set(path + "|" + row.id, row.label); });
          }));
      });
      return Promise.allSettled(lookups);
    });
  };

  // The field description of a dotted path, from the loaded field lists.
  Builder.prototype.fieldInfo = function (path) {
    const parts = String(path).split(".");
    const prefix = parts.slice(0, -1).join(".");
    const list = this.loaded.get(prefix);
    if (!list) return null;
    return list.fields.find(function (f) { return f.name === parts[parts.length - 1]; }) || null;
  };

  // --- tree -> domain, #records ----------------------------------------------------------

  Builder.prototype.changed = function (redraw) {
    const domain = toDomain(this.tree);
    this.value.value = JSON.stringify(domain);
    this.codeSeq++; // a code-view answer still on its way is outdated
    this.hideCodeError();
    if (document.activeElement !== this.code) this.code.value = prettyDomain(domain);
    if (redraw) this.render();
    this.scheduleCount(350);
  };

  Builder.prototype.scheduleCount = function (delay) {
    const self = this;
    clearTimeout(this.countTimer);
    this.root.classList.add("fb-counting");
    this.countTimer = setTimeout(function () { self.count(); }, delay);
  };

  Builder.prototype.params = function () {
    return {
      domain: this.value.value,
      base_domain: this.baseDomain,
      include_archived: this.includeArchived ? "true" : "false",
    };
  };

  Builder.prototype.count = function () {
    const self = this;
    const seq = ++this.countSeq;
    if (this.abort) this.abort.abort();
    this.abort = new AbortController();
    this.post("count", this.params(), this.abort.signal)
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (seq !== self.countSeq) return;
        self.root.classList.remove("fb-counting");
        self.markInvalid(data.error ? data.error.field : null);
        if (data.error) {
          self.countBox.textContent = "–";
          self.setStatus(data.error.message, true);
        } else {
          self.countBox.textContent = formatNumber(data.count);
          self.countUnit.textContent = data.count === 1 ? "record" : "records";
          self.setStatus("", false);
        }
      })
      .catch(function (error) {
        if (error.name !== "AbortError") self.setStatus("Could not count the records: " + error.message, true);
      });
  };

  Builder.prototype.setStatus = function (text, isError) {
    this.status.textContent = text;
    this.status.classList.toggle("fb-status-error", Boolean(isError));
  };

  Builder.prototype.markInvalid = function (field) {
    this.treeBox.querySelectorAll(".fb-rule").forEach(function (row) {
      const path = row.dataset.field || "";
      const bad = Boolean(field) && (field === path || field.indexOf(path + ".") === 0);
      row.classList.toggle("fb-rule-invalid", bad);
    });
  };

  Builder.prototype.showRecords = function () {
    const self = this;
    this.dialogBody.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
    if (!this.dialog.open) this.dialog.showModal();
    this.post("records", this.params())
      .then(function (r) {
        return r.text().then(function (text) { return { ok: r.ok, text: text }; });
      })
      .then(function (res) {
        if (res.ok) {
          const doc = new DOMParser().parseFromString(res.text, "text/html");
          self.dialogBody.replaceChildren.apply(self.dialogBody, Array.from(doc.body.childNodes));
        } else {
          let message = "The records could not be listed.";
          try { message = JSON.parse(res.text).error.message; } catch (e) { /* keep */ }
          self.dialogBody.replaceChildren(el("p", { class: "field-error", role: "alert", text: message }));
        }
      });
  };

  // --- drawing ---------------------------------------------------------------------------

  Builder.prototype.render = function () {
    const self = this;
    const active = document.activeElement;
    const focusKey = active && this.treeBox.contains(active) ? active.dataset.key : null;
    this.treeBox.replaceChildren(this.renderGroup(this.tree, null, "r", 0, ""));
    if (focusKey) {
      const again = this.treeBox.querySelector('[data-key="' + focusKey + '"]');
      if (again) again.focus();
    }
    self.markInvalid(null);
  };

  Builder.prototype.newRule = function () {
    const fields = (this.loaded.get("") || { fields: [] }).fields;
    const first = fields.find(function (f) { return f.type === "char"; }) || fields[0];
    const rule = { type: "rule", field: first ? first.name : "id", operator: "=", value: null, negate: false };
    if (first) this.resetRule(rule, first);
    return rule;
  };

  // A sensible operator and value for a rule whose field just changed.
  Builder.prototype.resetRule = function (rule, info) {
    const type = info.type;
    const pick = function (wanted) {
      return info.operators.indexOf(wanted) >= 0 ? wanted : info.operators[0];
    };
    if (type === "char" || type === "text") { rule.operator = pick("ilike"); rule.value = ""; }
    else if (type === "boolean") { rule.operator = "="; rule.value = true; }
    else if (type === "selection") { rule.operator = "="; rule.value = info.selection[0] || ""; }
    else if (type === "integer" || type === "float") { rule.operator = "="; rule.value = 0; }
    else if (type === "datetime") { rule.operator = pick(">="); rule.value = { relative: "-7d" }; }
    else if (RELATION_TYPES.indexOf(type) >= 0) { rule.operator = "in"; rule.value = []; }
    else { rule.operator = info.operators[0]; rule.value = null; }
  };

  // Rules are numbered by position: 1, 2, 3.1 (the first rule of branch 3), …
  Builder.prototype.renderGroup = function (group, parent, key, depth, number) {
    const self = this;
    const isRoot = parent === null;
    // fieldsets: groups for assistive technology (Pico styles role=group as a button bar)
    const box = el("fieldset", { class: "fb-group" + (isRoot ? " fb-root" : " fb-branch"),
      "aria-label": isRoot ? "Rules" : "Branch " + number });
    const head = el("div", { class: "fb-group-head" });
    const n = group.children.length;
    if (n >= 2 || group.negate) {
      const id = this.prefix + "-match-" + key;
      const matchLabel = isRoot ? "Match all or any of the rules" : "Branch " + number + ": match all or any of its rules";
      const select = el("select", { id: id, "data-key": key + "-match", class: "fb-match", disabled: this.readonly,
        "aria-label": matchLabel });
      const options = [["all", false, "all"], ["any", false, "any"], ["any", true, "none"]];
      if (group.negate && group.match === "all") options.push(["all", true, "not all"]);
      options.forEach(function ([match, negate, text]) {
        const option = el("option", { value: match + (negate ? "!" : ""), text: text });
        if (group.match === match && Boolean(group.negate) === negate) option.selected = true;
        select.append(option);
      });
      select.addEventListener("change", function () {
        group.match = select.value.replace("!", "");
        group.negate = select.value.endsWith("!");
        self.changed(false);
      });
      head.append(el("label", { for: id, class: "fb-match-label", text: "Match" }), select,
        el("span", { class: "fb-match-tail", text: "of the following rules" }));
      head.classList.add("fb-sentence");
    } else if (isRoot) {
      head.append(el("span", { class: "fb-match-tail", text: n === 1 ? "Match records with the following rule" : "All records match: add a rule to narrow them down." }));
    } else {
      head.append(el("span", { class: "fb-match-tail", text: "Branch with one rule" }));
    }
    if (!isRoot && !this.readonly) {
      head.append(el("button", { type: "button", class: "fb-icon fb-delete secondary outline", "data-key": key + "-del",
        "aria-label": "Delete branch " + number, title: "Delete this branch",
        onclick: function () { self.remove(parent, group); } }, [document.createTextNode("✕")]));
    }
    box.append(head);
    const list = el("ul", { class: "fb-children" });
    group.children.forEach(function (child, index) {
      const childKey = key + "-" + index;
      const item = el("li", {});
      const childNumber = (number ? number + "." : "") + (index + 1);
      if (child.type === "group") item.append(self.renderGroup(child, group, childKey, depth + 1, childNumber));
      else item.append(self.renderRule(child, group, childKey, childNumber));
      list.append(item);
    });
    if (n) box.append(list);
    if (!this.readonly) {
      const actions = el("div", { class: "fb-actions" });
      actions.append(el("button", { type: "button", class: "secondary outline small", "data-key": key + "-add",
        onclick: function () {
          group.children.push(self.newRule());
          self.changed(true);
          self.focusLast(key, "field");
        } }, [document.createTextNode("+ Add rule")]));
      if (depth < 3) {
        actions.append(el("button", { type: "button", class: "secondary outline small", "data-key": key + "-branch",
          onclick: function () {
            group.children.push({ type: "group", match: group.match === "all" ? "any" : "all", negate: false,
              children: [self.newRule(), self.newRule()] });
            self.changed(true);
          } }, [document.createTextNode("+ Add branch")]));
      }
      box.append(actions);
    }
    return box;
  };

  Builder.prototype.focusLast = function (key, part) {
    const rows = this.treeBox.querySelectorAll('[data-group="' + key + '"]');
    const row = rows[rows.length - 1];
    const target = row && row.querySelector("select");
    if (target) target.focus();
  };

  Builder.prototype.remove = function (parent, node) {
    const index = parent.children.indexOf(node);
    if (index >= 0) parent.children.splice(index, 1);
    this.changed(true);
  };

  Builder.prototype.renderRule = function (rule, parent, key, number) {
    const self = this;
    const info = this.fieldInfo(rule.field);
    const row = el("fieldset", { class: "fb-rule", "data-field": rule.field, "data-group": key.replace(/-\d+$/, ""),
      "aria-label": "Rule " + number });
    const body = el("div", { class: "fb-rule-body" });
    if (rule.negate) {
      body.append(el("button", { type: "button", class: "fb-not secondary", "aria-pressed": "true",
        title: "This rule is negated: click to remove the negation", disabled: this.readonly,
        onclick: function () { rule.negate = false; self.changed(true); } }, [document.createTextNode("not")]));
    }
    body.append(this.renderFieldPicker(rule, key, number));
    if (!info) {
      body.append(el("span", { class: "muted", text: rule.operator + " " + JSON.stringify(rule.value) }));
    } else {
      body.append(this.renderOperator(rule, info, key, number));
      const value = this.renderValue(rule, info, key, number);
      if (value) body.append(value);
    }
    row.append(body);
    if (!this.readonly) {
      row.append(el("button", { type: "button", class: "fb-icon fb-delete secondary outline", "data-key": key + "-del",
        "aria-label": "Delete rule " + number, title: "Delete this rule",
        onclick: function () { self.remove(parent, rule); } }, [document.createTextNode("✕")]));
    }
    return row;
  };

  // Cascading selects: the model's fields, then the fields of each relation followed.
  Builder.prototype.renderFieldPicker = function (rule, key, number) {
    const self = this;
    const box = el("div", { class: "fb-field" });
    const parts = String(rule.field).split(".");
    let prefix = "";
    for (let level = 0; level <= parts.length; level++) {
      const list = this.loaded.get(prefix);
      if (!list) break;
      const chosen = parts[level];
      if (level > 0 && level === parts.length) {
        // The rule tests the relation itself; offer its sub-fields.
        box.append(this.fieldSelect(rule, key, number, level, prefix, list, "", parts));
        break;
      }
      if (level === parts.length) break;
      box.append(this.fieldSelect(rule, key, number, level, prefix, list, chosen, parts));
      const info = list.fields.find(function (f) { return f.name === chosen; });
      if (!info || RELATION_TYPES.indexOf(info.type) < 0) break;
      prefix = prefix ? prefix + "." + chosen : chosen;
      if (!this.loaded.get(prefix)) {
        // Sub-fields not loaded yet (a relation just chosen): load, then draw again.
        this.fieldsAt(prefix).then(function () { self.render(); });
        break;
      }
    }
    return box;
  };

  Builder.prototype.fieldSelect = function (rule, key, number, level, prefix, list, chosen, parts) {
    const self = this;
    const id = this.prefix + "-field-" + key + "-" + level;
    const select = el("select", { id: id, "data-key": key + "-f" + level, class: "fb-field-select",
      "aria-label": level === 0 ? "Field of rule " + number : list.label + " field of rule " + number,
      disabled: this.readonly });
    if (level > 0) select.append(el("option", { value: "", text: "any " + list.label.toLowerCase() }));
    list.fields.forEach(function (f) {
      const relation = RELATION_TYPES.indexOf(f.type) >= 0;
      const option = el("option", { value: f.name, text: f.label + (relation ? " ›" : "") });
      if (f.name === chosen) option.selected = true;
      select.append(option);
    });
    if (chosen && !list.fields.some(function (f) { return f.name === chosen; })) {
      select.append(el("option", { value: chosen, text: chosen + " (unknown)", selected: true }));
    }
    select.addEventListener("change", function () {
      const path = parts.slice(0, level).concat(select.value ? [select.value] : []).join(".");
      rule.field = path;
      const info = select.value ? list.fields.find(function (f) { return f.name === select.value; }) : self.fieldInfo(path);
      if (info) self.resetRule(rule, info);
      const relation = info && RELATION_TYPES.indexOf(info.type) >= 0;
      (relation ? self.fieldsAt(path) : Promise.resolve()).then(function () {
        self.changed(true);
      });
    });
    return select;
  };

  Builder.prototype.operatorLabel = function (op, info) {
    if (info.type === "datetime" && DATE_LABELS[op]) return DATE_LABELS[op];
    if (info.type === "boolean" && BOOLEAN_LABELS[op]) return BOOLEAN_LABELS[op];
    if (RELATION_TYPES.indexOf(info.type) >= 0 && RELATION_LABELS[op]) return RELATION_LABELS[op];
    return OPERATOR_LABELS[op] || op;
  };

  Builder.prototype.renderOperator = function (rule, info, key, number) {
    const self = this;
    const select = el("select", { class: "fb-operator", "data-key": key + "-op",
      "aria-label": "Operator of rule " + number, disabled: this.readonly });
    let operators = info.operators.slice();
    if (RELATION_TYPES.indexOf(info.type) >= 0) {
      // Pattern operators on a relation's name are rarely wanted; the code view has them.
      operators = operators.filter(function (op) { return ["like", "not like", "=like", "=ilike"].indexOf(op) < 0; });
    }
    if (operators.indexOf(rule.operator) < 0) operators.push(rule.operator);
    operators.forEach(function (op) {
      const option = el("option", { value: op, text: self.operatorLabel(op, info) });
      if (op === rule.operator) option.selected = true;
      select.append(option);
    });
    select.addEventListener("change", function () {
      const before = rule.operator;
      rule.operator = select.value;
      rule.value = self.convertValue(rule.value, before, rule.operator, info);
      self.changed(true);
    });
    return select;
  };

  // Keep what can be kept of the value when the operator changes.
  Builder.prototype.convertValue = function (value, before, after, info) {
    if (NO_VALUE.indexOf(after) >= 0) return null;
    const wasList = LIST_OPERATORS.indexOf(before) >= 0;
    const isList = LIST_OPERATORS.indexOf(after) >= 0;
    const relation = RELATION_TYPES.indexOf(info.type) >= 0;
    const textOp = after.indexOf("like") >= 0;
    if (relation && textOp) return typeof value === "string" ? value : "";
    if (isList && !wasList) return value === null || value === undefined || value === "" || (relation && typeof value === "string") ? [] : [value];
    if (!isList && wasList) {
      const first = Array.isArray(value) && value.length ? value[0] : null;
      if (relation) return first;
      return first === null ? this.emptyValue(info) : first;
    }
    if (NO_VALUE.indexOf(before) >= 0 || value === null) return relation ? (isList ? [] : null) : this.emptyValue(info);
    if (textOp && typeof value !== "string") return "";
    return value;
  };

  Builder.prototype.emptyValue = function (info) {
    if (info.type === "boolean") return true;
    if (info.type === "selection") return info.selection[0] || "";
    if (info.type === "integer" || info.type === "float") return 0;
    if (info.type === "datetime") return { relative: "-7d" };
    return "";
  };

  Builder.prototype.renderValue = function (rule, info, key, number) {
    const self = this;
    const op = rule.operator;
    if (NO_VALUE.indexOf(op) >= 0) return null;
    const label = "Value of rule " + number;
    const type = info.type;
    const isList = LIST_OPERATORS.indexOf(op) >= 0;
    const disabled = this.readonly;
    const set = function (value) { rule.value = value; self.changed(false); };
    if (RELATION_TYPES.indexOf(type) >= 0 && op.indexOf("like") < 0) {
      return this.renderPicker(rule, info, key, number, isList || type !== "many2one");
    }
    if (type === "boolean") {
      const select = el("select", { class: "fb-value", "data-key": key + "-v", "aria-label": label, disabled: disabled });
      [["true", "true (yes)"], ["false", "false (no)"]].forEach(function ([v, text]) {
        select.append(el("option", { value: v, text: text, selected: String(rule.value === true || rule.value === 1) === v }));
      });
      select.addEventListener("change", function () { set(select.value === "true"); });
      return select;
    }
    if (type === "selection" && !isList) {
      const select = el("select", { class: "fb-value", "data-key": key + "-v", "aria-label": label, disabled: disabled });
      info.selection.forEach(function (v) {
        select.append(el("option", { value: v, text: v, selected: rule.value === v }));
      });
      if (info.selection.indexOf(rule.value) < 0) select.append(el("option", { value: String(rule.value), text: String(rule.value), selected: true }));
      select.addEventListener("change", function () { set(select.value); });
      return select;
    }
    if (type === "selection" && isList) {
      const chosen = Array.isArray(rule.value) ? rule.value : [];
      const box = el("fieldset", { class: "fb-value fb-checks" }, [el("legend", { class: "visually-hidden", text: label })]);
      info.selection.forEach(function (v, i) {
        const id = self.prefix + "-" + key + "-s" + i;
        const input = el("input", { type: "checkbox", id: id, value: v, "data-key": key + "-s" + i, checked: chosen.indexOf(v) >= 0, disabled: disabled });
        input.addEventListener("change", function () {
          set(Array.from(box.querySelectorAll("input:checked")).map(function (c) { return c.value; }));
        });
        box.append(el("label", { for: id, class: "fb-check" }, [input, document.createTextNode(" " + v)]));
      });
      return box;
    }
    if (type === "datetime") return this.renderDate(rule, key, label);
    if (isList) {
      const numeric = type === "integer" || type === "float";
      const input = el("input", { type: "text", class: "fb-value", "data-key": key + "-v", "aria-label": label + " (separate values with commas)",
        placeholder: numeric ? "1, 2, 3" : "value one, value two", disabled: disabled,
        value: (Array.isArray(rule.value) ? rule.value : []).filter(function (v) { return v !== null; }).join(", ") });
      input.addEventListener("input", function () {
        const items = input.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
        set(numeric ? items.map(function (s) { return s !== "" && !isNaN(Number(s)) ? Number(s) : s; }) : items);
      });
      return input;
    }
    if (type === "integer" || type === "float") {
      const input = el("input", { type: "number", class: "fb-value", "data-key": key + "-v", "aria-label": label,
        step: type === "float" ? "any" : "1", value: rule.value === null || rule.value === undefined ? "" : String(rule.value), disabled: disabled });
      input.addEventListener("input", function () {
        // Empty stays "" (the server says a number is needed): null would mean "is not set".
        set(input.value === "" ? "" : Number(input.value));
      });
      return input;
    }
    const input = el("input", { type: "text", class: "fb-value", "data-key": key + "-v", "aria-label": label, disabled: disabled,
      value: rule.value === null || rule.value === undefined ? "" : String(rule.value),
      placeholder: RELATION_TYPES.indexOf(type) >= 0 ? "name" : "" });
    input.addEventListener("input", function () { set(input.value); });
    return input;
  };

  // A date: an exact date and time, or relative to now ("7 days ago").
  Builder.prototype.renderDate = function (rule, key, label) {
    const self = this;
    const disabled = this.readonly;
    const relative = rule.value && typeof rule.value === "object" && "relative" in rule.value;
    const box = el("div", { class: "fb-value fb-date" });
    const mode = el("select", { "aria-label": label + ": kind of date", "data-key": key + "-dm", disabled: disabled });
    mode.append(el("option", { value: "relative", text: "relative to now", selected: relative }));
    mode.append(el("option", { value: "date", text: "a date", selected: !relative }));
    mode.addEventListener("change", function () {
      rule.value = mode.value === "relative" ? { relative: "-7d" } : new Date().toISOString().slice(0, 10) + "T00:00:00";
      self.changed(true);
    });
    if (relative) {
      const match = /^\s*([+-]?)(\d+)([hdwm])\s*$/.exec(rule.value.relative) || ["", "-", "7", "d"];
      const amount = el("input", { type: "number", min: "0", step: "1", class: "fb-amount", "data-key": key + "-da",
        "aria-label": label + ": how many", value: match[2], disabled: disabled });
      const unit = el("select", { "aria-label": label + ": unit", "data-key": key + "-du", disabled: disabled });
      UNITS.forEach(function ([u, text]) { unit.append(el("option", { value: u, text: text, selected: match[3] === u })); });
      const direction = el("select", { "aria-label": label + ": ago or from now", "data-key": key + "-dd", disabled: disabled });
      direction.append(el("option", { value: "-", text: "ago", selected: match[1] === "-" }));
      direction.append(el("option", { value: "+", text: "from now", selected: match[1] !== "-" }));
      const update = function () {
        const n = amount.value === "" ? "0" : String(Math.abs(parseInt(amount.value, 10) || 0));
        rule.value = { relative: (direction.value === "-" ? "-" : "+") + n + unit.value };
        self.changed(false);
      };
      amount.addEventListener("input", update);
      unit.addEventListener("change", update);
      direction.addEventListener("change", update);
      box.append(mode, amount, unit, direction);
    } else {
      const text = typeof rule.value === "string" ? rule.value.slice(0, 16) : "";
      const input = el("input", { type: "datetime-local", "aria-label": label + " (UTC)", "data-key": key + "-dt", value: text, disabled: disabled });
      input.addEventListener("change", function () {
        rule.value = input.value ? (input.value.length === 16 ? input.value + ":00" : input.value) : "";
        self.changed(false);
      });
      box.append(mode, input);
    }
    return box;
  };

  // Related records: chips of the chosen ones, a search box listing matches by name.
  Builder.prototype.renderPicker = function (rule, info, key, number, multiple) {
    const self = this;
    const related = info.label;
    const ids = (Array.isArray(rule.value) ? rule.value : (rule.value === null || rule.value === undefined ? [] : [rule.value]))
      .filter(function (v) { return v !== null && v !== false; });
    const box = el("div", { class: "fb-value fb-picker" });
    const chips = el("ul", { class: "fb-chips", "aria-label": "Chosen " + related.toLowerCase() + " records" });
    ids.forEach(function (id) {
      const name = typeof id === "string" ? id : (self.labels.get(rule.field + "|" + id) || related + " #" + id);
      const chip = el("li", { class: "fb-chip" }, [el("span", { text: name })]);
      if (!self.readonly) {
        chip.append(el("button", { type: "button", class: "fb-chip-x", "aria-label": "Remove " + name,
          "data-key": key + "-x" + id, onclick: function () {
            const rest = ids.filter(function (v) { return v !== id; });
            rule.value = multiple ? rest : null;
            self.changed(true);
          } }, [document.createTextNode("×")]));
      }
      chips.append(chip);
    });
    if (ids.length) box.append(chips);
    if (this.readonly) {
      if (!ids.length) box.append(el("span", { class: "muted", text: "none" }));
      return box;
    }
    const listId = this.prefix + "-" + key + "-results";
    const search = el("input", { type: "search", class: "fb-search", "data-key": key + "-q", autocomplete: "off",
      "aria-label": "Search " + related.toLowerCase() + " for rule " + number, placeholder: "Search " + related.toLowerCase() + "…",
      "aria-controls": listId });
    const results = el("ul", { class: "fb-results", id: listId, hidden: true });
    let timer = null;
    const lookup = function () {
      const url = "/ui/filters/" + encodeURIComponent(self.model) + "/related?path=" + encodeURIComponent(rule.field) +
        "&q=" + encodeURIComponent(search.value);
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (rows) {
        results.replaceChildren();
        if (!Array.isArray(rows)) {
          results.append(el("li", { class: "muted fb-none", text: rows && rows.error ? rows.error.message : "No match" }));
          results.hidden = false;
          return;
        }
        rows.forEach(function (row) {
          self.labels.set(rule.field + "|" + row.id, row.label);
          const chosen = ids.indexOf(row.id) >= 0;
          results.append(el("li", {}, [el("button", { type: "button", class: "fb-result", "data-id": String(row.id),
            disabled: chosen, onclick: function () {
              rule.value = multiple ? ids.concat([row.id]) : row.id;
              self.changed(true);
              const again = self.treeBox.querySelector('[data-key="' + key + '-q"]');
              if (again) again.focus();
            } }, [document.createTextNode(row.label + (chosen ? " (chosen)" : ""))])]));
        });
        if (!rows.length) results.append(el("li", { class: "muted fb-none", text: "No match" }));
        results.hidden = false;
      });
    };
    search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(lookup, 200); });
    search.addEventListener("focus", function () { if (!search.value) lookup(); });
    search.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { results.hidden = true; }
      if (event.key === "ArrowDown") {
        const first = results.querySelector("button:not([disabled])");
        if (first) { event.preventDefault(); first.focus(); }
      }
    });
    box.addEventListener("focusout", function (event) {
      if (!box.contains(event.relatedTarget)) results.hidden = true;
    });
    box.append(search, results);
    return box;
  };

  function start(root) {
    if (root.dataset.fbStarted) return;
    root.dataset.fbStarted = "true";
    root.filterBuilder = new Builder(root);
  }

  function startAll(scope) {
    (scope || document).querySelectorAll(".filter-builder").forEach(start);
  }

  document.addEventListener("DOMContentLoaded", function () { startAll(document); });
  // Builders arriving in htmx swaps (the activity dialog) start too.
  document.addEventListener("htmx:load", function (event) {
    const node = event.detail && event.detail.elt;
    if (!node || !node.querySelectorAll) return;
    if (node.classList && node.classList.contains("filter-builder")) start(node);
    startAll(node);
  });
})();
