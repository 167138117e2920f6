# Image for a real cluster (config/default). Build: docker build -t lbspeaker:0.1.0 .
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends iproute2 procps kubernetes-client \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lbspeaker ./lbspeaker
COPY controller ./controller
COPY config ./config
RUN pip install --no-cache-dir -e ".[bgp]"
USER 65534
ENTRYPOINT []
