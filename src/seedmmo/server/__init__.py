"""The orchestrator service: FastAPI REST, the WebSocket hub and the tick runtime."""
