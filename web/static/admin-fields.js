// Admin console (issue 13), custom fields: of the dependency tables (one per possible parent
// field, each with "options per parent value" and "only when the parent is one of"), show only
// the chosen parent's and the chosen rule's. Without this script they all show; the server
// reads only the chosen ones. Options and number limits show only for the types that take them.
(function () {
  "use strict";
  function update(form) {
    var parent = form.querySelector("#cf-dep-field");
    if (!parent) { return; }
    var rule = form.querySelector("input[name=dep_rule]:checked");
    var ruleValue = rule ? rule.value : "options";
    form.querySelectorAll(".dep-parent").forEach(function (block) {
      block.hidden = block.getAttribute("data-parent") !== parent.value;
      block.querySelectorAll("[data-rule]").forEach(function (part) {
        part.hidden = part.getAttribute("data-rule") !== ruleValue;
      });
    });
    // Options only for a choice, limits only for a number (the server refuses the rest).
    var type = form.querySelector("#cf-type");
    form.querySelectorAll("[data-types]").forEach(function (el) {
      var wanted = el.getAttribute("data-types").split(" ");
      var input = el.querySelector("input, textarea");
      el.hidden = type && wanted.indexOf(type.value) < 0 && !(input && input.value.trim());
    });
    var rules = form.querySelector(".dep-rules");
    if (rules) { rules.hidden = parent.value === ""; }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-testid=field-form]");
    if (!form) { return; }
    form.addEventListener("change", function () { update(form); });
    update(form);
  });
})();
