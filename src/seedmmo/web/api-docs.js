// Starts Swagger UI (vendored: the pages load nothing from elsewhere) on this server's OpenAPI
// document. A file of its own because the content-security policy allows no inline script.
/* global SwaggerUIBundle */
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // the server's own address only: no validator badge calling validator.swagger.io
  validatorUrl: null,
  // an admin or game key typed into "Authorize" stays in this tab, for "Try it out"
  persistAuthorization: false,
});
