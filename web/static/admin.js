// Admin console (issue 13): rows added and removed on the calendar and contract forms, and
// checks as you type (the pattern of a duration or an interval). The server checks again on
// save: this only says early what it would refuse.
(function () {
  "use strict";

  // ``typed``: called for a keystroke, not for the page as the server rendered it. A problem
  // the server found under the field says it already on load; once the value is edited, that
  // sentence is about an old value and the live hint takes over.
  function checkInput(input, typed) {
    var kind = input.getAttribute("data-check");
    var bad = input.value.trim() !== "" && !input.validity.valid;
    if (kind === "duration" && input.value.trim() !== "") {
      var text = input.value.replace(/\s+/g, "").toLowerCase();
      bad = !/^(\d+w)?(\d+d)?(\d+h)?(\d+m)?$/.test(text) || text === "";
    }
    if (kind === "interval" && input.value.trim() !== "") {
      var m = /^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$/.exec(input.value.trim());
      bad = !m || +m[2] > 59 || +m[4] > 59 || +m[1] > 23 || +m[3] > 24 ||
        (+m[3] * 60 + +m[4]) <= (+m[1] * 60 + +m[2]);
    }
    if (bad) { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
    var scope = input.closest("tr, fieldset, .field") || input.parentNode;
    var said = scope.querySelector('[data-testid="problem"]');
    if (said && typed) { said.hidden = true; }
    var message = scope.querySelector('[data-check-message="' + kind + '"]');
    if (message) {
      var anyBad = scope.querySelector('[data-check="' + kind + '"][aria-invalid="true"]');
      message.hidden = !anyBad || (said !== null && !said.hidden);
    }
  }

  document.addEventListener("input", function (event) {
    var input = event.target;
    if (input instanceof HTMLInputElement && input.hasAttribute("data-check")) { checkInput(input, true); }
  });

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box instanceof HTMLInputElement && box.hasAttribute("data-toggles")) {
      var target = document.getElementById(box.getAttribute("data-toggles"));
      if (target) { target.hidden = box.checked; }
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("button") : null;
    if (!button) { return; }
    if (button.hasAttribute("data-remove-row")) {
      var row = button.closest(".admin-interval, .admin-row");
      var next = row && (row.nextElementSibling || row.previousElementSibling);
      if (row) { row.remove(); }
      var focus = next && next.querySelector("input");
      (focus || document.querySelector("[data-add-interval]") || document.body).focus();
      return;
    }
    var kind = button.getAttribute("data-add-row");
    if (kind) {
      // A new blank row like the last one, its fields renamed to the next index (tt3.name).
      var body = document.querySelector('[data-rows="' + kind + '"]');
      var count = document.querySelector('[data-count="' + kind + '"]');
      if (!body || !count || !body.lastElementChild) { return; }
      var index = parseInt(count.value, 10);
      var copy = body.lastElementChild.cloneNode(true);
      var pattern = new RegExp("^" + kind + "\\d+\\.");
      copy.querySelectorAll("[name]").forEach(function (field) {
        field.name = field.name.replace(pattern, kind + index + ".");
        if (field.type === "radio") { field.value = String(index); field.checked = false; }
        else if (field.type === "checkbox") { field.checked = field.defaultChecked; }
        else if (field.tagName !== "SELECT") { field.value = ""; field.removeAttribute("readonly"); }
        field.removeAttribute("aria-invalid");
      });
      copy.querySelectorAll('[data-testid="problem"]').forEach(function (p) { p.remove(); });
      body.appendChild(copy);
      count.value = String(index + 1);
      var first = copy.querySelector("input:not([type=radio]), select");
      if (first) { first.focus(); }
      return;
    }
    var day = button.getAttribute("data-add-interval");
    if (day) {
      var template = document.getElementById("interval-template");
      var list = button.parentNode.querySelector(".admin-intervals");
      if (!template || !list) { return; }
      var piece = template.content.firstElementChild.cloneNode(true);
      var input = piece.querySelector("input");
      input.name = "hours_" + day;
      input.setAttribute("aria-labelledby", "day-" + day);
      list.appendChild(piece);
      input.focus();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[data-check]").forEach(function (input) {
      checkInput(input, false);
    });
  });
})();
