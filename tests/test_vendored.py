"""The front-end libraries in the package are the ones web-src/package-lock.json pins."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "src" / "seedmmo" / "web" / "vendor"


def test_vendored_files_match_the_lockfile() -> None:
    lock = json.loads((ROOT / "web-src" / "package-lock.json").read_text())
    versions = json.loads((VENDOR / "VERSIONS.json").read_text())
    for name in ("three", "uplot", "swagger-ui-dist"):
        assert lock["packages"][f"node_modules/{name}"]["version"] == versions[name], name
    bundle = (VENDOR / "swagger-ui-bundle.js").read_text()
    assert "SwaggerUIBundle" in bundle and (VENDOR / "swagger-ui.css").stat().st_size > 10_000
    assert (
        f"REVISION = '{versions['three'].split('.')[1]}'" in (VENDOR / "three.core.js").read_text()
    )
    orbit = (VENDOR / "OrbitControls.js").read_text()
    assert "from './three.module.js'" in orbit and "from 'three'" not in orbit


def test_pages_load_no_script_from_elsewhere() -> None:
    for page in (ROOT / "src" / "seedmmo" / "web").glob("*.html"):
        text = page.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, page
