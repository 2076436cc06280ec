/* Pulpit console: keyboard shortcuts and small conveniences. Every page works without it. */
(function () {
  "use strict";

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  /* --- The list: j/k row highlight, Enter opens, x ticks -------------------------------- */
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-href]"));
  var current = -1;

  function highlight(index) {
    if (!rows.length) return;
    index = Math.max(0, Math.min(rows.length - 1, index));
    if (current >= 0 && rows[current]) rows[current].classList.remove("current");
    current = index;
    var row = rows[current];
    row.classList.add("current");
    row.scrollIntoView({ block: "nearest" });
    var link = row.querySelector("[data-row-link]");
    if (link) link.focus({ preventScroll: true });
  }

  rows.forEach(function (row, i) {
    row.addEventListener("click", function (ev) {
      // A click on the row's empty space opens it; links and checkboxes keep their own job.
      if (ev.target.closest("a, input, button, label, select")) return;
      if (window.getSelection && String(window.getSelection())) return;
      highlight(i);
      window.location.href = row.getAttribute("data-href");
    });
  });

  /* --- Bulk selection ------------------------------------------------------------------ */
  var bulk = document.querySelector("[data-bulk]");
  var checkAll = document.querySelector("[data-check-all]");
  var boxes = Array.prototype.slice.call(document.querySelectorAll('input[name="numbers"]'));

  function syncBulk() {
    var n = 0;
    boxes.forEach(function (box) {
      var row = box.closest("tr");
      if (row) row.classList.toggle("selected", box.checked);
      if (box.checked) n += 1;
    });
    var count = document.querySelector("[data-bulk-n]");
    if (count) count.textContent = String(n);
    var apply = document.querySelector("[data-bulk-apply]");
    if (apply) apply.disabled = n === 0;
    if (checkAll) {
      checkAll.checked = n > 0 && n === boxes.length;
      checkAll.indeterminate = n > 0 && n < boxes.length;
    }
  }

  if (checkAll) {
    checkAll.addEventListener("change", function () {
      boxes.forEach(function (box) { box.checked = checkAll.checked; });
      syncBulk();
    });
  }
  boxes.forEach(function (box) { box.addEventListener("change", syncBulk); });
  if (bulk) syncBulk();

  /* --- Filters apply as soon as a select changes ---------------------------------------- */
  /* Only after a pointer choice: arrow keys on a closed select fire "change" on every step,
     and reloading under a keyboard user's fingers would break WCAG 3.2.2 (On Input). */
  var filters = document.querySelector("form[data-autosubmit]");
  var lastPointer = 0;
  if (filters) {
    filters.addEventListener("pointerdown", function () { lastPointer = Date.now(); });
    filters.addEventListener("change", function (ev) {
      var byPointer = Date.now() - lastPointer < 10000;
      if (ev.target.matches("input[type=checkbox]") || (byPointer && ev.target.matches("select"))) {
        filters.submit();
      }
    });
  }

  /* --- The list refreshes itself while nobody is working in it --------------------------- */
  var refreshHost = document.querySelector("[data-autorefresh]");
  var refreshAfter = refreshHost ? Number(refreshHost.getAttribute("data-autorefresh")) : 0;
  var lastActivity = Date.now();
  ["keydown", "pointerdown", "scroll"].forEach(function (name) {
    document.addEventListener(name, function () { lastActivity = Date.now(); }, { passive: true });
  });
  if (refreshAfter > 0) {
    setInterval(function () {
      var idle = Date.now() - lastActivity > refreshAfter * 1000;
      var ticked = document.querySelector('input[name="numbers"]:checked');
      if (idle && !ticked && document.visibilityState === "visible" && !typing(document.activeElement)) {
        window.location.reload();
      }
    }, 15000);
  }

  /* --- New ticket: offer only the chosen contract's ticket types ------------------------- */
  var contractSelect = document.querySelector("[data-contract-select]");
  var typeSelect = document.querySelector("[data-type-select]");
  function filterTypes() {
    if (!contractSelect || !typeSelect) return;
    var code = contractSelect.value;
    Array.prototype.forEach.call(typeSelect.querySelectorAll("optgroup"), function (group) {
      var show = !code || group.getAttribute("data-contract") === code;
      group.hidden = !show;
      group.disabled = !show;
    });
    var chosen = typeSelect.selectedOptions[0];
    if (chosen && chosen.parentElement.disabled) typeSelect.value = "";
  }
  if (contractSelect) {
    contractSelect.addEventListener("change", filterTypes);
    filterTypes();
  }

  /* --- Help popover ---------------------------------------------------------------------- */
  var help = document.getElementById("shortcuts");
  var helpButton = document.querySelector("[data-help-toggle]");
  function toggleHelp(show) {
    if (!help) return;
    var open = typeof show === "boolean" ? show : help.hidden;
    help.hidden = !open;
    if (helpButton) helpButton.setAttribute("aria-expanded", String(open));
  }
  if (helpButton) helpButton.addEventListener("click", function () { toggleHelp(); });
  document.addEventListener("click", function (ev) {
    if (help && !help.hidden && !ev.target.closest("#shortcuts, [data-help-toggle]")) toggleHelp(false);
  });

  /* --- Ctrl+Enter sends the form being typed in ------------------------------------------ */
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && typing(ev.target) && ev.target.form) {
      ev.preventDefault();
      if (ev.target.form.requestSubmit) ev.target.form.requestSubmit();
      else ev.target.form.submit();
    }
  });

  /* --- Single-key shortcuts ------------------------------------------------------------- */
  var pendingG = false;
  var pendingTimer = null;

  function backToList() {
    var back = document.querySelector("[data-back]");
    if (back) window.location.href = back.getAttribute("href");
    else if (!rows.length) window.location.href = "/tickets";
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "Escape") {
      if (help && !help.hidden) { toggleHelp(false); return; }
      if (typing(ev.target)) { ev.target.blur(); return; }
      backToList();
      return;
    }
    if (typing(ev.target)) return;

    if (pendingG) {
      pendingG = false;
      clearTimeout(pendingTimer);
      if (ev.key === "l") { ev.preventDefault(); window.location.href = "/tickets"; }
      return;
    }
    switch (ev.key) {
      case "/": {
        var search = document.querySelector("[data-search]");
        if (search) { ev.preventDefault(); search.focus(); search.select(); }
        break;
      }
      case "j":
        if (rows.length) { ev.preventDefault(); highlight(current + 1); }
        break;
      case "k":
        if (rows.length) { ev.preventDefault(); highlight(current < 0 ? 0 : current - 1); }
        break;
      case "Enter":
        if (current >= 0 && rows[current] && !ev.target.closest("a, button")) {
          ev.preventDefault();
          window.location.href = rows[current].getAttribute("data-href");
        }
        break;
      case "x":
        if (current >= 0 && rows[current]) {
          var box = rows[current].querySelector('input[name="numbers"]');
          if (box) { ev.preventDefault(); box.checked = !box.checked; syncBulk(); }
        }
        break;
      case "c": {
        var comment = document.querySelector("[data-comment]");
        if (comment) {
          ev.preventDefault();
          comment.scrollIntoView({ block: "center" });
          comment.focus();
        }
        break;
      }
      case "g":
        pendingG = true;
        pendingTimer = setTimeout(function () { pendingG = false; }, 1200);
        break;
      case "?":
        ev.preventDefault();
        toggleHelp();
        break;
      default:
        break;
    }
  });
})();

// Choosing several things (_macros.html pick_many): the count chosen, and a filter box that
// hides the options whose label does not contain what was typed (case and accents aside).
(function () {
  "use strict";
  function fold(text) {
    return text.toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "")
      .replace(/ł/g, "l");
  }
  document.querySelectorAll("[data-pick-many]").forEach(function (box) {
    var count = box.querySelector("[data-pick-count]");
    var filter = box.querySelector("[data-pick-filter]");
    var options = Array.prototype.slice.call(box.querySelectorAll(".pick-option"));
    var template = box.getAttribute("data-count-text") || "";
    function recount() {
      var n = box.querySelectorAll('input[type="checkbox"]:checked').length;
      if (count) count.textContent = n ? "(" + (template ? template.replace("%d", n) : n) + ")" : "";
    }
    box.addEventListener("change", recount);
    recount();
    if (!filter) return;
    filter.addEventListener("input", function () {
      var wanted = fold(filter.value.trim());
      options.forEach(function (label) {
        label.hidden = wanted !== "" && fold(label.textContent).indexOf(wanted) < 0;
      });
    });
    // Enter in the filter must not submit the form: it ticks the only option left.
    filter.addEventListener("keydown", function (ev) {
      if (ev.key !== "Enter") return;
      ev.preventDefault();
      var shown = options.filter(function (label) { return !label.hidden; });
      if (shown.length === 1) {
        var input = shown[0].querySelector("input");
        input.checked = !input.checked;
        recount();
      }
    });
  });
})();
