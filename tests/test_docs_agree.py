"""docs/protocol.md's endpoint table and the app's OpenAPI document list the same endpoints."""

from __future__ import annotations

import re
from pathlib import Path

from seedmmo.server.app import create_app
from seedmmo.server.settings import Settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def test_every_endpoint_is_documented_and_every_documented_one_exists(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, admin_token="x"))
    served = {
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    documented = set(
        re.findall(r"^\| `((?:GET|POST|PATCH|DELETE) [^`]+)` \|", DOC.read_text(), re.M)
    )
    assert served - documented == set(), "endpoints missing from docs/protocol.md"
    assert documented - served == set(), "docs/protocol.md lists endpoints that do not exist"
