# Image for a real cluster (config/default). Build: docker build -t lbspeaker:0.1.0 .
# Without Docker: bash scripts/build-image.sh builds the same layout (Debian bookworm, its Python 3.11,
# lbspeaker[bgp] installed from a wheel into /usr/local, bytecode precompiled for a read-only root).
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY config ./config
COPY lbspeaker ./lbspeaker
COPY controller ./controller
# not editable: a wheel is built and installed; its console scripts get #!/usr/bin/python3
RUN pip install --no-cache-dir --no-compile --target /site ".[bgp]" && mv /site/bin /scripts

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 ca-certificates iproute2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /site /usr/local/lib/python3.11/dist-packages
COPY --from=build /scripts /usr/local/bin
# the speaker starts exabgp from its interpreter's folder (/usr/bin)
RUN ln -s ../local/bin/exabgp /usr/bin/exabgp \
    && python3 -m compileall -q --invalidation-mode unchecked-hash /usr/local/lib/python3.11/dist-packages
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /
CMD ["lbspeaker-speaker", "--help"]
