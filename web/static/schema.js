/* /schema: start the vendored Redoc on our OpenAPI document (no inline script: see web/security.py). */
(function () {
  "use strict";
  var host = document.getElementById("redoc-container");
  if (!host || typeof Redoc === "undefined") return;
  Redoc.init(host.getAttribute("data-spec-url"), { hideDownloadButton: false }, host);
})();
