// Copies the front-end libraries the pages use from node_modules (installed from
// package-lock.json by `npm ci`) into src/seedmmo/web/vendor, so the package serves them itself
// and the pages work offline. The only change made: OrbitControls imports three from the file
// next to it instead of the bare name 'three' (no import map is needed, and the pages' CSP
// allows no inline script).
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "seedmmo", "web", "vendor");
mkdirSync(out, { recursive: true });
const version = (name) =>
  JSON.parse(readFileSync(join(here, "node_modules", name, "package.json"))).version;
const from = (...parts) => join(here, "node_modules", ...parts);

copyFileSync(from("three", "build", "three.module.js"), join(out, "three.module.js"));
copyFileSync(from("three", "build", "three.core.js"), join(out, "three.core.js"));
const orbit = readFileSync(from("three", "examples", "jsm", "controls", "OrbitControls.js"), "utf8");
writeFileSync(join(out, "OrbitControls.js"), orbit.replace("from 'three';", "from './three.module.js';"));
copyFileSync(from("three", "LICENSE"), join(out, "LICENSE.three.txt"));
copyFileSync(from("uplot", "dist", "uPlot.esm.js"), join(out, "uPlot.esm.js"));
copyFileSync(from("uplot", "dist", "uPlot.min.css"), join(out, "uPlot.min.css"));
copyFileSync(from("uplot", "LICENSE"), join(out, "LICENSE.uplot.txt"));
// Swagger UI for /docs: the bundle and its stylesheet (the page that starts it is ours: the
// package's swagger-initializer.js points at a petstore, and inline scripts are not allowed)
copyFileSync(from("swagger-ui-dist", "swagger-ui-bundle.js"), join(out, "swagger-ui-bundle.js"));
copyFileSync(from("swagger-ui-dist", "swagger-ui.css"), join(out, "swagger-ui.css"));
copyFileSync(from("swagger-ui-dist", "LICENSE"), join(out, "LICENSE.swagger-ui.txt"));
writeFileSync(
  join(out, "VERSIONS.json"),
  JSON.stringify(
    { three: version("three"), uplot: version("uplot"), "swagger-ui-dist": version("swagger-ui-dist") },
    null,
    2,
  ) + "\n",
);
console.log(
  `vendored three ${version("three")}, uPlot ${version("uplot")} and Swagger UI ` +
    `${version("swagger-ui-dist")} into ${out}`,
);
