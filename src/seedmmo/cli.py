"""Command line entry point (filled in by the service)."""


def main() -> int:
    return 0
