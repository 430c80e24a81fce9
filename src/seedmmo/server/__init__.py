"""The orchestrator service: FastAPI REST, the WebSocket hub and the tick runtime. The
application is :func:`seedmmo.server.app.create_app`; import from the modules."""

__all__: list[str] = []
