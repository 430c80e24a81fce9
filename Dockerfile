# The orchestrator image: python:3.12-slim, multi-stage (no compilers in the final image),
# non-root, data on the /data volume, health checked on /api/health.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Wheels for seedmmo and everything it needs (all ship binary wheels: nothing is compiled).
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin seedmmo \
    && mkdir -p /data && chown seedmmo /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels seedmmo && rm -rf /wheels
USER seedmmo
ENV SEEDMMO_DATA_DIR=/data PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4).status == 200 else 1)"]
CMD ["seedmmo", "serve", "--host", "0.0.0.0", "--port", "8000", "--data-dir", "/data"]
