/* Pulpit ticket forms (issue 12): the custom fields' dependency rules applied as the person
   chooses, the new-ticket form's fields per contract, the checklist ticked on change and the
   type change's checklist question. The server applies the same rules
   (core/tickets/fields.py); every form works without this file. */
(function () {
  "use strict";

  function each(list, fn) { Array.prototype.forEach.call(list, fn); }

  /* --- The rules, as core.tickets.fields writes them (form_rules) ------------------------- */
  function key(v) { return typeof v === "boolean" ? (v ? "true" : "false") : String(v); }
  function asList(v) {
    if (v === null || v === undefined || v === "") return [];
    return Array.isArray(v) ? v : [v];
  }

  function setupFields(root) {
    var rules;
    var stored;
    try {
      rules = JSON.parse(root.getAttribute("data-field-rules") || "[]");
      stored = JSON.parse(root.getAttribute("data-field-values") || "{}") || {};
    } catch (e) {
      return;
    }
    var byName = {};
    rules.forEach(function (r) { byName[r.name] = r; });

    function box(name) {
      return root.querySelector('[data-field="' + (window.CSS && CSS.escape ? CSS.escape(name) : name) + '"]');
    }

    function valueOf(r) {
      var el = box(r.name);
      if (!el || !r.editable) return stored[r.name];
      if (r.type === "multiselect") {
        var picked = [];
        each(el.querySelectorAll('input[type=checkbox]'), function (c) { if (c.checked && !c.disabled) picked.push(c.value); });
        return picked;
      }
      if (r.type === "bool") {
        var check = el.querySelector("input[type=checkbox]");
        return check && !check.disabled ? check.checked : null;
      }
      var input = el.querySelector("[data-field-input]");
      return input && !input.disabled ? input.value : "";
    }

    function values() {
      var out = {};
      rules.forEach(function (r) { out[r.name] = valueOf(r); });
      return out;
    }

    function parentOf(r) {
      var dep = r.depends_on;
      return dep && dep.field ? byName[dep.field] || null : null;
    }

    function allowed(r, vals) {
      if (r.type !== "select" && r.type !== "multiselect") return null;
      var dep = r.depends_on || {};
      var parent = parentOf(r);
      if (!parent || !dep.options) return r.options.slice();
      var ok = {};
      asList(vals[parent.name]).forEach(function (v) {
        Object.keys(dep.options).forEach(function (k) {
          if (key(k) === key(v)) (dep.options[k] || []).forEach(function (o) { ok[String(o)] = true; });
        });
      });
      return r.options.filter(function (o) { return ok[o]; });
    }

    function applies(r, vals, seen) {
      var parent = parentOf(r);
      if (!parent || seen[r.name]) return true;
      var next = Object.assign({}, seen);
      next[r.name] = true;
      if (!applies(parent, vals, next)) return false;
      var dep = r.depends_on || {};
      if ("when" in dep) {
        var wanted = (dep.when || []).map(key);
        return asList(vals[parent.name]).some(function (v) { return wanted.indexOf(key(v)) >= 0; });
      }
      if ("options" in dep) return allowed(r, vals).length > 0;
      return true;
    }

    function apply(r, vals) {
      var el = box(r.name);
      if (!el) return false;
      var dep = r.depends_on || {};
      var ok = applies(r, vals, {});
      var hide = !ok && !("options" in dep);
      var waiting = !ok && "options" in dep;
      el.hidden = hide;
      el.classList.toggle("cf-waiting", waiting);
      if (!r.editable) return false;
      var changed = false;
      if (r.type === "multiselect") {
        var group = el.querySelector("fieldset");
        if (group) group.disabled = hide || waiting;
        var allow = allowed(r, vals) || [];
        each(el.querySelectorAll("label.cf-opt"), function (label) {
          var c = label.querySelector("input");
          var yes = allow.indexOf(c.value) >= 0;
          label.hidden = !yes;
          c.disabled = !yes;
          if (!yes && c.checked) { c.checked = false; changed = true; }
        });
        return changed;
      }
      each(el.querySelectorAll("input, select, textarea"), function (i) { i.disabled = hide || waiting; });
      if (r.type === "select") {
        var select = el.querySelector("select");
        var opts = allowed(r, vals) || [];
        var current = select.value;
        var have = [];
        each(select.options, function (o) { if (o.value) have.push(o.value); });
        if (have.join("\n") !== opts.join("\n")) {
          each(Array.prototype.slice.call(select.options), function (o) { if (o.value) o.remove(); });
          opts.forEach(function (o) {
            var option = document.createElement("option");
            option.value = o;
            option.textContent = o;
            select.appendChild(option);
          });
        }
        if (current && opts.indexOf(current) < 0) { select.value = ""; changed = true; }
        else select.value = current;
      }
      return changed;
    }

    function refresh() {
      // A cleared child may clear its own children: repeat until nothing changes.
      for (var round = 0; round <= rules.length; round += 1) {
        var vals = values();
        var changed = false;
        rules.forEach(function (r) { if (apply(r, vals)) changed = true; });
        if (!changed) break;
      }
    }

    root.addEventListener("change", refresh);
    refresh();
  }

  each(document.querySelectorAll("[data-field-rules]"), setupFields);

  /* --- New ticket: the chosen contract's fields ------------------------------------------ */
  var contractSelect = document.querySelector("[data-fields-contract]");
  var sets = document.querySelectorAll("[data-fields-for]");
  function chooseSet() {
    if (!contractSelect || !sets.length) return;
    var code = contractSelect.value;
    var any = false;
    each(sets, function (set) {
      var mine = set.getAttribute("data-fields-for") === code;
      if (mine) any = true;
      set.hidden = !mine;
      set.disabled = !mine;
    });
    if (!any) {
      each(sets, function (set) {
        if (set.getAttribute("data-fields-for") === "") { set.hidden = false; set.disabled = false; }
      });
    }
  }
  if (contractSelect) {
    contractSelect.addEventListener("change", chooseSet);
    chooseSet();
  }

  /* --- Checklist: a checkbox sends its form; the page comes back focused on it ------------ */
  each(document.querySelectorAll("[data-checklist-form]"), function (form) {
    var box = form.querySelector("[data-checklist-box]");
    var submit = form.querySelector("[data-checklist-submit]");
    if (!box) return;
    if (submit) submit.hidden = true;
    box.addEventListener("change", function () {
      form.querySelector('input[name="done"]').value = box.checked ? "1" : "0";
      box.setAttribute("aria-busy", "true");
      form.submit();
    });
  });
  var hash = window.location.hash;
  if (/^#ci-\d+$/.test(hash)) {
    var target = document.getElementById(hash.slice(1));
    if (target) target.focus({ preventScroll: false });
  }

  /* --- Type change: ask about the chosen type's checklist -------------------------------- */
  var prompt = document.querySelector("[data-checklist-ask]");
  var typeSelect = document.getElementById("f-ttype");
  function askChecklist() {
    if (!prompt || !typeSelect) return;
    var chosen = typeSelect.selectedOptions[0];
    var text = chosen ? chosen.getAttribute("data-checklist-prompt") : null;
    var isCurrent = chosen && chosen.defaultSelected;
    prompt.hidden = !text || isCurrent;
    prompt.querySelector("input").disabled = prompt.hidden;
    if (text) prompt.querySelector("[data-checklist-prompt-text]").textContent = text;
  }
  if (typeSelect && prompt) {
    typeSelect.addEventListener("change", askChecklist);
    askChecklist();
  }
})();
