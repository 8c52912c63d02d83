// Starts Swagger UI on /openapi/swagger from a file, since the Content-Security-Policy runs no inline
// script. The document's URL comes from this script tag's data-url. No validator badge: it would
// send the document to validator.swagger.io.
(function () {
  "use strict";
  const url = document.currentScript.dataset.url;
  window.addEventListener("load", () => {
    window.ui = SwaggerUIBundle({
      url: new URL(url, window.location.href).href,
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      plugins: [SwaggerUIBundle.plugins.DownloadUrl],
      layout: "StandaloneLayout",
      validatorUrl: null,
      persistAuthorization: false,
    });
  });
})();
