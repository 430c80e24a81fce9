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
        re.findall(r"^\| `((?:GET|POST|PUT|PATCH|DELETE) [^`]+)` \|", DOC.read_text(), re.M)
    )
    assert served - documented == set(), "endpoints missing from docs/protocol.md"
    assert documented - served == set(), "docs/protocol.md lists endpoints that do not exist"


def test_the_message_tables_match_the_protocol_catalogue() -> None:
    from seedmmo.protocol import MESSAGES, REPLIES

    text = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \| (.*?) \|(?: .*? \|)?$", text, re.MULTILINE)
    documented_messages: dict[str, tuple[list[str], list[str]]] = {}
    documented_replies: dict[str, list[str]] = {}
    for name, cells in rows:
        names = re.findall(r"`([a-z0-9_]+\??)`", cells)
        if name in MESSAGES and name not in documented_messages:
            documented_messages[name] = (
                [n for n in names if not n.endswith("?")],
                [n[:-1] for n in names if n.endswith("?")],
            )
        elif name in REPLIES:
            documented_replies[name] = names
    assert documented_messages == {
        kind: (list(spec.fields), list(spec.optional)) for kind, spec in MESSAGES.items()
    }
    assert documented_replies == {action: list(fields) for action, fields in REPLIES.items()}
