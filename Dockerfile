# cnbackup container image: docker build -t cnbackup:dev .
# Docker is not available where this was written: CI proves the build stage instead, by building the
# package from exactly the files it copies with its own `swift build` line, and checks that the
# runtime stage installs every shared library the binary needs (scripts/build-image-context.sh).
# (.dockerignore keeps .build/ out of the context: a host build would not run in the image.)
#
# Base images are pinned by digest (the tag beside it documents intent; Docker uses the digest), so
# a rebuild cannot silently change the toolchain or the runtime. These digests were taken from
# public pins of the same tags (swift:6.1-bookworm: its linux/amd64 image; debian:bookworm-slim: a
# multi-platform index), not confirmed against the registry where this was written (no registry
# access there). A wrong or expired digest fails `docker build` at its FROM, loudly. To refresh or
# to build for arm64, look them up and pass them as build arguments (or edit the defaults):
#   docker buildx imagetools inspect swift:6.1-bookworm      (the top "Digest:" line is the index)
#   docker buildx imagetools inspect debian:bookworm-slim
#   docker build --build-arg SWIFT_IMAGE=swift:6.1-bookworm@sha256:<digest> \
#                --build-arg RUNTIME_IMAGE=debian:bookworm-slim@sha256:<digest> -t cnbackup:dev .
# Renovate/Dependabot can keep them current. scripts/build-image-context.sh (run by CI) refuses a FROM
# without a digest and builds the package from exactly the files the build stage copies.
ARG SWIFT_IMAGE=swift:6.1-bookworm@sha256:48a6d9c230cd654b262f805978d1d56b2aadf5b3c0d2fc088643296692cbca62
ARG RUNTIME_IMAGE=debian:bookworm-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251

# --- build ------------------------------------------------------------------------------------
FROM ${SWIFT_IMAGE} AS build
# Headers for the system-library targets (CCurl, COpenSSL, CZstd).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcurl4-openssl-dev libssl-dev libzstd-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve dependencies in their own layer, so source edits do not refetch them. (Package.resolved
# is not in git: the versions resolve from Package.swift's ranges.)
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
# Every target declared in Package.swift, tests included, must have its folder for the package to load.
COPY Tests ./Tests
# Static Swift runtime: the runtime image needs no Swift toolchain, only the C libraries below.
RUN swift build -c release --product cnbackup --static-swift-stdlib \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/cnbackup" /out/cnbackup

# --- runtime ----------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
# pg_dump must be at least the server's major version (pg_restore at least the dump's), and Splice
# asks for PostgreSQL 17: the clients for 15 to 18 come from PostgreSQL's own apt repository
# (PGDG). Each capture asks its server for its version and runs the oldest client at least as new
# (under /usr/lib/postgresql/*/bin); a pipeline's `binDirectory` pins one instead.
# libxml2: Foundation's XMLParser (S3 answers); scripts/build-image-context.sh checks that every
# shared library the binary needs comes from a package installed here or from the base image.
# curl: the CometBFT VolumeSnapshot script; jq: the off-cluster nightly script.
# tini: PID 1 (below), so SIGTERM from `docker stop` or the kubelet reaches cnbackup (which then
# commits what completed within --grace-period) and orphaned grandchildren of captures are reaped.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && install -d /usr/share/postgresql-common/pgdg \
 && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc \
 && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
      > /etc/apt/sources.list.d/pgdg.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      libcurl4 libssl3 libzstd1 libxml2 zstd tar jq tini \
      postgresql-client-15 postgresql-client-16 postgresql-client-17 postgresql-client-18 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 cnbackup \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin cnbackup
COPY --from=build /out/cnbackup /usr/local/bin/cnbackup
# Numeric so Kubernetes' runAsNonRoot can check it without resolving names.
USER 10001:10001
# tini as PID 1: the kernel gives PID 1 no default signal actions and nobody else reaps orphans.
# tini forwards SIGTERM/SIGINT to cnbackup and reaps zombies. In Kubernetes, set only `args:` to keep
# this entrypoint; a `command:` replaces it (examples/kubernetes/README.md says what the examples do).
ENTRYPOINT ["/usr/bin/tini", "--", "cnbackup"]
CMD ["--help"]
