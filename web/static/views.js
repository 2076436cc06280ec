/* The ticket list's views bar: refresh the counts of the queue and the saved views every
   minute from GET /views/counts, without reloading the page (web.console.views.counts). */
(function () {
  "use strict";
  var bar = document.querySelector("[data-view-counts]");
  if (!bar || !window.fetch) return;
  var url = bar.getAttribute("data-view-counts");
  var every = 60000;

  function show(el, value) {
    var text = value === null || value === undefined ? "\u2014" : String(value);
    if (el.textContent !== text) el.textContent = text;
  }

  function refresh() {
    if (document.hidden) return;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        var views = data.views || {};
        Array.prototype.forEach.call(bar.querySelectorAll("[data-view-count]"), function (el) {
          var id = el.getAttribute("data-view-count");
          if (Object.prototype.hasOwnProperty.call(views, id)) show(el, views[id]);
        });
        var queue = bar.querySelector("[data-queue-count]");
        if (queue && data.queue !== null && data.queue !== undefined) show(queue, data.queue);
        bar.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* offline for a moment: try again next time */ });
  }

  var seconds = parseInt(bar.getAttribute("data-refresh-seconds") || "", 10);
  if (seconds > 0) every = seconds * 1000;
  window.setInterval(refresh, every);
  // Also on demand (another script, or a test): document.dispatchEvent(new Event("pulpit:views")).
  document.addEventListener("pulpit:views", refresh);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
})();
