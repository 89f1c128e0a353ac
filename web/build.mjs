// Copies the browser assets the web app serves into dist/: the npm packages' own builds
// (installed by `npm ci` from package-lock.json) and the app's sources in src/.
// Nothing is downloaded here and nothing is fetched by a page at run time.
import { cpSync, mkdirSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const vendor = {
  "htmx.min.js": "htmx.org/dist/htmx.min.js",
  "htmx-sse.min.js": "htmx-ext-sse/dist/sse.min.js",
  "chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
  "swagger-ui/swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
  "swagger-ui/swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
  "swagger-ui/favicon-32x32.png": "swagger-ui-dist/favicon-32x32.png",
  "redoc/redoc.standalone.js": "redoc/bundles/redoc.standalone.js",
};

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "vendor"), { recursive: true });
const files = {};
for (const [name, from] of Object.entries(vendor)) {
  const to = join(dist, "vendor", name);
  mkdirSync(dirname(to), { recursive: true });
  cpSync(join(here, "node_modules", from), to);
  files[`vendor/${name}`] = to;
}
// ReDoc's side menu shows a logo from its vendor's CDN (no option turns it off): the bundle gets
// an empty inline image instead, so the page makes no request outside this service.
const redoc = join(dist, "vendor", "redoc", "redoc.standalone.js");
const remoteLogo = '"https://cdn.redoc.ly/redoc/logo-mini.svg"';
const source = readFileSync(redoc, "utf8");
if (!source.includes(remoteLogo)) {
  throw new Error(`redoc.standalone.js no longer loads ${remoteLogo}: check build.mjs against this release`);
}
writeFileSync(redoc, source.replaceAll(remoteLogo, JSON.stringify("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E")));
cpSync(join(here, "src"), dist, { recursive: true });
for (const name of ["app.css", "app.js", "docs.js"]) files[name] = join(dist, name);
// Each file's hash, so pages can ask for /static/NAME?v=HASH and browsers cache it for good.
const manifest = Object.fromEntries(Object.entries(files).map(
  ([name, path]) => [name, createHash("sha256").update(readFileSync(path)).digest("hex").slice(0, 12)]));
writeFileSync(join(dist, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`web assets: ${Object.keys(manifest).length} files in ${dist}`);
