"""The pre-built text frames are what RFC 6455 says, at every length encoding."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from seedmmo.server.fastpath import Outgoing, text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_text_frame_parses_back(size: int) -> None:
    payload = ("é" * size).encode()[:size]
    payload = payload.decode(errors="ignore").encode()
    reader = StreamReader()
    reader.feed_data(text_frame(payload))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
    else:  # pragma: no cover - the whole frame was fed
        raise AssertionError("parser wanted more bytes")
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert frame.data == payload


def test_outgoing_builds_its_frame_once() -> None:
    msg = Outgoing('{"event_type":"x"}')
    assert msg.frame is msg.frame
    assert msg.frame.endswith(b'{"event_type":"x"}')
