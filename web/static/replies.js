/* Pulpit's reply box (issue 15, web/templates/_replies_form.html):
   - drafts: what is typed is kept in localStorage (per user, ticket and field) and restored
     after a reload with a "draft restored - discard" note; cleared once a send succeeded;
   - canned replies: typing "::" and a few letters opens a list (ARIA listbox) of the
     replies whose shortcut or title match, accent-insensitive; arrows move, Enter or Tab
     inserts the reply rendered for this ticket in place of "::abc", Esc closes;
   - every 30 s, while the page is visible, asks whether someone else changed the ticket and
     says so above the box (the server checks again on send).
   The form works without this file. */
(function () {
  "use strict";

  var box = document.querySelector("[data-reply-box]");
  if (!box) return;
  var form = box.closest("form");
  var area = form && form.querySelector("textarea[name=body]");
  if (!area) return;

  /* A send held back because the ticket changed: show the warning, the text below it. */
  var conflict = form.querySelector('[data-testid="reply-conflict"]');
  if (conflict) conflict.scrollIntoView({ block: "center" });

  /* --- Drafts --------------------------------------------------------------------------- */
  var key = box.getAttribute("data-draft-key");
  var SENT = "pulpit:sent";
  var note = form.querySelector("[data-reply-draft-note]");
  var store = null;
  try { store = window.localStorage; } catch (e) { store = null; }

  function saveDraft() {
    if (!store) return;
    try {
      if (area.value.trim()) store.setItem(key, area.value);
      else store.removeItem(key);
    } catch (e) { /* full or refused: the draft is only a convenience */ }
  }

  if (store) {
    var refused = document.querySelector('[data-testid="form-error"], [data-testid="reply-conflict"]');
    try {
      if (window.sessionStorage.getItem(SENT) === key) {
        window.sessionStorage.removeItem(SENT);
        if (!refused) store.removeItem(key);  // the send went through
      }
    } catch (e) { /* no session storage: keep the draft */ }
    var saved = store.getItem(key);
    if (saved && !area.value.trim()) {
      area.value = saved;
      if (note) note.hidden = false;
    } else if (area.value.trim()) {
      saveDraft();  // a refused send shows the text again: keep it as the draft
    }
  }
  var timer = null;
  area.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(saveDraft, 300);
  });
  form.addEventListener("submit", function () {
    saveDraft();
    try { window.sessionStorage.setItem(SENT, key); } catch (e) { /* ignore */ }
  });
  var discard = form.querySelector("[data-reply-discard]");
  if (discard) {
    discard.addEventListener("click", function () {
      area.value = "";
      if (store) store.removeItem(key);
      if (note) note.hidden = true;
      area.focus();
    });
  }

  /* --- Canned replies ("::") ------------------------------------------------------------- */
  var cannedUrl = box.getAttribute("data-canned-url");
  if (cannedUrl) {
    var items = null;   // fetched once per page
    var loading = false;
    var shown = [];
    var active = -1;
    var start = -1;     // where "::" begins in the textarea
    var listId = "rp-canned-list";

    var anchor = document.createElement("div");
    anchor.className = "rp-anchor";
    area.parentNode.insertBefore(anchor, area.nextSibling);
    var list = document.createElement("ul");
    list.id = listId;
    list.className = "rp-list";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", box.getAttribute("data-canned-label") || "");
    list.setAttribute("data-testid", "canned-list");
    list.hidden = true;
    anchor.appendChild(list);
    area.setAttribute("aria-autocomplete", "list");
    area.setAttribute("aria-controls", listId);
    area.setAttribute("aria-expanded", "false");

    var fold = function (text) {
      return String(text).toLowerCase().replace(/ł/g, "l").normalize("NFD").replace(/[\u0300-\u036f]/g, "");
    };

    var query = function () {
      var upto = area.value.slice(0, area.selectionStart);
      var match = /(^|\s)::([^\s:]*)$/.exec(upto);
      if (!match) return null;
      start = upto.length - match[2].length - 2;
      return match[2];
    };

    var close = function () {
      list.hidden = true;
      shown = [];
      active = -1;
      area.setAttribute("aria-expanded", "false");
      area.removeAttribute("aria-activedescendant");
    };

    var select = function (index) {
      var options = list.querySelectorAll("[role=option]");
      if (!options.length) return;
      active = (index + options.length) % options.length;
      Array.prototype.forEach.call(options, function (li, i) {
        li.setAttribute("aria-selected", i === active ? "true" : "false");
      });
      area.setAttribute("aria-activedescendant", options[active].id);
      options[active].scrollIntoView({ block: "nearest" });
    };

    var insert = function (item) {
      var end = area.selectionStart;
      var before = area.value.slice(0, start);
      var after = area.value.slice(end);
      area.value = before + item.body + after;
      var caret = before.length + item.body.length;
      area.setSelectionRange(caret, caret);
      close();
      area.focus();
      area.dispatchEvent(new Event("input", { bubbles: true }));
    };

    var render = function (q) {
      var f = fold(q);
      shown = items.filter(function (it) {
        return !f || fold(it.shortcut).indexOf(f) >= 0 || fold(it.title).indexOf(f) >= 0;
      });
      shown.sort(function (a, b) {
        var pa = fold(a.shortcut).indexOf(f) === 0 ? 0 : 1;
        var pb = fold(b.shortcut).indexOf(f) === 0 ? 0 : 1;
        return pa - pb;
      });
      list.textContent = "";
      if (!shown.length) {
        var empty = document.createElement("li");
        empty.className = "rp-empty";
        empty.textContent = box.getAttribute("data-canned-empty") || "";
        list.appendChild(empty);
      }
      shown.forEach(function (it, i) {
        var li = document.createElement("li");
        li.id = listId + "-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        li.setAttribute("data-testid", "canned-option");
        var sc = document.createElement("span");
        sc.className = "rp-sc";
        sc.textContent = "::" + it.shortcut;
        var title = document.createElement("span");
        title.className = "rp-title";
        title.textContent = it.title;
        li.appendChild(sc);
        li.appendChild(title);
        li.addEventListener("mousedown", function (ev) { ev.preventDefault(); insert(it); });
        list.appendChild(li);
      });
      list.hidden = false;
      area.setAttribute("aria-expanded", "true");
      if (shown.length) select(0);
    };

    var update = function () {
      var q = query();
      if (q === null) { close(); return; }
      if (items) { render(q); return; }
      if (loading) return;
      loading = true;
      fetch(cannedUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { items: [] }; })
        .then(function (data) {
          items = data.items || [];
          loading = false;
          var again = query();
          if (again !== null) render(again);
        })
        .catch(function () { loading = false; });
    };

    area.addEventListener("input", update);
    area.addEventListener("click", update);
    area.addEventListener("blur", function () { setTimeout(close, 150); });
    area.addEventListener("keydown", function (ev) {
      if (list.hidden) return;
      if (ev.key === "ArrowDown") { ev.preventDefault(); select(active + 1); }
      else if (ev.key === "ArrowUp") { ev.preventDefault(); select(active - 1); }
      else if (ev.key === "Enter" || ev.key === "Tab") {
        if (active >= 0 && shown[active] && !ev.ctrlKey && !ev.metaKey) {
          ev.preventDefault();
          insert(shown[active]);
        } else if (ev.key === "Enter") {
          close();
        }
      } else if (ev.key === "Escape") {
        ev.preventDefault();  // closes the list only; pulpit.js leaves the box on the next Esc
        close();
      }
    });
  }

  /* --- Changed while you were writing ---------------------------------------------------- */
  var changesUrl = box.getAttribute("data-changes-url");
  var seen = form.querySelector("[data-reply-seen]");
  var banner = form.querySelector("[data-reply-banner]");
  var bannerText = form.querySelector("[data-reply-banner-text]");
  if (changesUrl && seen && banner && bannerText && window.fetch) {
    var poll = function () {
      if (document.hidden) return;
      fetch(changesUrl + "?since=" + encodeURIComponent(seen.value), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (r) { return r.ok ? r.json() : { changes: [] }; })
        .then(function (data) {
          var changes = data.changes || [];
          if (!changes.length) return;
          bannerText.textContent = box.getAttribute("data-changed-words") + " " +
            changes.map(function (c) { return c.who + ", " + c.what; }).join("; ");
          banner.hidden = false;
        })
        .catch(function () { /* offline: the server checks on send */ });
    };
    var every = parseInt(box.getAttribute("data-poll-ms") || "30000", 10);
    window.setInterval(poll, every);
  }
})();
