// Admin console (issue 13), custom fields: of the dependency tables (one per possible parent
// field, each with "options per parent value" and "only when the parent is one of"), show only
// the chosen parent's and the chosen rule's. Without this script they all show; the server
// reads only the chosen ones.
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
