// Swagger UI for /docs, from the swagger-ui-dist package served by this service. No validator
// badge (it would call an outside service); try-it-out calls carry the session's CSRF token.
(function () {
  var root = document.getElementById("swagger-ui");
  var csrf = root.dataset.csrf;
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapi,
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor: function (req) {
      if (csrf) { req.headers["X-CSRF-Token"] = csrf; }
      return req;
    },
  });
})();
