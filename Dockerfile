# cnbackup container image. Docker is not available on the machine this was written on, so this
# file has not been built there; build it with: docker build -t cnbackup:dev .
# (.dockerignore keeps .build/ out of the context: a host build would not run in the image.)

# --- build ------------------------------------------------------------------------------------
FROM swift:6.1-bookworm AS build
# Headers for the system-library targets (CCurl, COpenSSL, CZstd).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcurl4-openssl-dev libssl-dev libzstd-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve dependencies in their own layer, so source edits do not refetch them.
COPY Package.swift Package.resolved ./
RUN swift package resolve
COPY Sources ./Sources
# Static Swift runtime: the runtime image needs no Swift toolchain, only the C libraries below.
RUN swift build -c release --product cnbackup --static-swift-stdlib \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/cnbackup" /out/cnbackup

# --- runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# pg_dump must be at least the server's major version (pg_restore at least the dump's).
# Debian 12 ships PostgreSQL 15; for 16/17 servers add the PGDG repository
# (https://apt.postgresql.org, "bookworm-pgdg") and install postgresql-client-17 instead,
# then point `binDirectory` in the pipeline at /usr/lib/postgresql/17/bin.
# curl: the CometBFT VolumeSnapshot script; jq: the off-cluster nightly script.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libcurl4 libssl3 libzstd1 zstd tar postgresql-client-15 curl jq \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 cnbackup \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin cnbackup
# Debian puts the versioned clients behind a wrapper; put them first on PATH so captures find
# pg_dump/pg_dumpall/pg_restore of the installed major version directly.
ENV PATH=/usr/lib/postgresql/15/bin:$PATH
COPY --from=build /out/cnbackup /usr/local/bin/cnbackup
# Numeric so Kubernetes' runAsNonRoot can check it without resolving names.
USER 10001:10001
ENTRYPOINT ["cnbackup"]
CMD ["--help"]
