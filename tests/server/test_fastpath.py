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


def test_the_raw_path_is_taken_only_with_everything_it_uses() -> None:
    from types import SimpleNamespace

    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    from seedmmo.server.fastpath import raw_capable

    class Transport:
        def write(self, data: bytes) -> None: ...
        def get_write_buffer_size(self) -> int:
            return 0

        def is_closing(self) -> bool:
            return False

        def abort(self) -> None: ...
        def get_extra_info(self, name: str) -> None: ...

    def protocol(**missing: bool) -> object:
        proto = WebSocketsSansIOProtocol.__new__(WebSocketsSansIOProtocol)
        fields = {
            "transport": Transport(),
            "handshake_complete": True,
            "close_sent": False,
            "disconnected": False,
            "writable": object(),
        }
        for name, value in fields.items():
            if not missing.get(name):
                setattr(proto, name, value)
        return proto

    assert raw_capable(protocol())
    assert not raw_capable(protocol(writable=True))  # an older uvicorn: the portable path
    assert not raw_capable(SimpleNamespace(**vars(protocol())))  # not uvicorn's protocol
    bare = protocol()
    bare.transport = SimpleNamespace(write=print)  # type: ignore[attr-defined]
    assert not raw_capable(bare)  # a transport without what the hub calls
