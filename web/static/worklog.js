/* Pulpit work log (issue 14): the entry form shows either the minutes or the start and end
   fields, the billable box follows the chosen work type's default, a delete asks first, and
   the running timer counts up from its server-side start (data-started-at), so a reload
   shows the right time. Every form works without this file. */
(function () {
  "use strict";

  function each(list, fn) { Array.prototype.forEach.call(list, fn); }

  function setupForm(form) {
    var radios = form.querySelectorAll("[data-wl-mode]");
    function showMode() {
      var mode = "minutes";
      each(radios, function (r) { if (r.checked) mode = r.value; });
      each(form.querySelectorAll("[data-wl-part]"), function (part) {
        var shown = part.getAttribute("data-wl-part") === mode;
        part.hidden = !shown;
        each(part.querySelectorAll("input"), function (input) { input.disabled = !shown; });
      });
    }
    each(radios, function (r) { r.addEventListener("change", showMode); });
    showMode();

    var type = form.querySelector("[data-wl-type]");
    var billable = form.querySelector("[data-wl-billable]");
    if (type && billable) {
      type.addEventListener("change", function () {
        var option = type.options[type.selectedIndex];
        billable.checked = option.getAttribute("data-billable") === "true";
      });
    }
  }

  function twoDigits(n) { return (n < 10 ? "0" : "") + n; }

  function tick(clocks) {
    var now = Date.now();
    each(clocks, function (el) {
      var started = Date.parse(el.getAttribute("data-started-at"));
      if (isNaN(started)) return;
      var seconds = Math.max(0, Math.floor((now - started) / 1000));
      var h = Math.floor(seconds / 3600);
      var m = Math.floor((seconds % 3600) / 60);
      el.textContent = h + ":" + twoDigits(m) + ":" + twoDigits(seconds % 60);
    });
  }

  each(document.querySelectorAll("[data-worklog-form]"), setupForm);

  each(document.querySelectorAll("form[data-confirm]"), function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  var clocks = document.querySelectorAll(".wl-elapsed[data-started-at]");
  if (clocks.length) {
    tick(clocks);
    window.setInterval(function () { tick(clocks); }, 1000);
  }
})();
