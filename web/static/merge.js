/* Pulpit: merging and splitting tickets (web/templates/_merge.html). Splitting an e-mail out
   asks first; the merge form focuses its number field when it is opened. Every form works
   without this file (the merge asks for a confirmation on the server). */
(function () {
  "use strict";

  function each(list, fn) { Array.prototype.forEach.call(list, fn); }

  each(document.querySelectorAll("form[data-split-confirm]"), function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-split-confirm"))) event.preventDefault();
    });
  });

  each(document.querySelectorAll(".merge-card details"), function (details) {
    details.addEventListener("toggle", function () {
      var input = details.querySelector("input[name=into]:not([type=hidden])");
      var confirm = details.querySelector("[data-testid=merge-confirm]");
      if (!details.open) return;
      if (confirm) confirm.focus();
      else if (input) input.focus();
    });
  });
}());
