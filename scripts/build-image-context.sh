#!/usr/bin/env bash
# Builds cnbackup the way the Dockerfile's build stage does, from exactly the files it copies, so CI
# proves the image builds on a machine without Docker (CI has none): a Dockerfile that forgets a folder
# Package.swift needs fails here, not on an operator's `docker build`.
#
#   scripts/build-image-context.sh OUT_DIR    -> OUT_DIR/cnbackup (and prints its path)
#
# The context is staged in SCRATCH/context: the build stage's `COPY` sources (everything before
# the first `FROM ... ` that is not the build stage is ignored; `COPY --from=` copies between stages
# and is skipped), with .dockerignore's patterns removed. Then the build stage's own commands run
# there: `swift package resolve` and the `swift build` line taken from the Dockerfile itself, so the
# two cannot drift apart. SCRATCH (default: .build-image beside the repository's .build) keeps the
# build products between runs; the sources are always the staged copy.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/build-image-context.sh OUT_DIR}
mkdir -p "$out"; out=$(realpath "$out")
scratch=${SCRATCH:-$PWD/.build-image}
# A fixed staging folder under SCRATCH (emptied first), so a second run rebuilds only what changed.
context=$scratch/context
rm -rf "$context"; mkdir -p "$context"

# Every base image pinned by digest: an ARG default or a FROM line that names a tag alone is refused.
froms=$(sed -n 's/^FROM \([^ ]*\).*/\1/p' Dockerfile)
for image in $froms; do
  case "$image" in
    '${'*'}') name=${image#\$\{}; name=${name%\}}
              image=$(sed -n "s/^ARG $name=\(.*\)/\1/p" Dockerfile) ;;
  esac
  [[ "$image" =~ @sha256:[0-9a-f]{64}$ ]] || { echo "build-image-context: base image '$image' is not pinned by digest (name:tag@sha256:...)" >&2; exit 1; }
done

# The build stage: from `FROM ... AS build` up to the next FROM.
stage=$(awk '/^FROM / { inside = ($0 ~ / AS build$/) } inside' Dockerfile)
[ -n "$stage" ] || { echo "build-image-context: Dockerfile has no 'FROM ... AS build' stage" >&2; exit 1; }

# Every `COPY SRC... DEST` of the build stage, DEST relative to WORKDIR /src (the stage's only WORKDIR).
echo "$stage" | grep -q '^WORKDIR /src$' || { echo "build-image-context: the build stage's WORKDIR is not /src" >&2; exit 1; }
while read -r -a words; do
  [ "${#words[@]}" -gt 2 ] && [ "${words[0]}" = COPY ] || continue
  case "${words[1]}" in --*) continue ;; esac
  n=${#words[@]}
  dest=${words[n-1]}
  for ((i = 1; i < n - 1; i++)); do
    src=${words[i]}
    [ -e "$src" ] || { echo "build-image-context: the Dockerfile copies '$src', which does not exist" >&2; exit 1; }
    case "$dest" in
      */) mkdir -p "$context/$dest"; cp -a "$src" "$context/$dest" ;;
      *) mkdir -p "$(dirname "$context/$dest")"; cp -a "$src" "$context/$dest" ;;
    esac
  done
done <<<"$stage"

# .dockerignore: Docker never sends these, so the staged copy must not have them either.
while read -r pattern; do
  case "$pattern" in ''|'#'*) continue ;; esac
  pattern=${pattern%/}
  (cd "$context" && find . -path "./$pattern" -prune -exec rm -rf {} + 2>/dev/null) || true
  (cd "$context" && find . -name "$pattern" -prune -exec rm -rf {} + 2>/dev/null) || true
done < .dockerignore

echo "build-image-context: staged $(cd "$context" && find . -type f | wc -l) files ($(cd "$context" && ls -m))" >&2

# The build stage's swift commands, as written in the Dockerfile (one `RUN swift build ...` line,
# whose `install` half copies the binary out; only the build half runs here, with our scratch path).
build_line=$(echo "$stage" | sed -n 's/^RUN \(swift build [^\\&]*\).*/\1/p' | head -n 1)
[ -n "$build_line" ] || { echo "build-image-context: no 'RUN swift build ...' line in the build stage" >&2; exit 1; }
read -r -a build_command <<<"$build_line"
(cd "$context" && swift package --scratch-path "$scratch" resolve >/dev/null)
(cd "$context" && "${build_command[@]}" --scratch-path "$scratch")
bin=$(cd "$context" && "${build_command[@]}" --scratch-path "$scratch" --show-bin-path)/cnbackup
install -m 0755 "$bin" "$out/cnbackup"

# The runtime stage installs no toolchain: every shared library the binary needs must come from a
# package that stage installs, or from the base image itself (debian:bookworm-slim has libc6,
# libgcc-s1 and libstdc++6: apt needs them). Foundation's XMLParser pulls in libxml2, for example.
runtime=$(awk '/^FROM / { inside = ($0 !~ / AS build$/) } inside' Dockerfile)
base_packages="libc6 libgcc-s1 libstdc++6"
missing=""
for soname in $(readelf -d "$out/cnbackup" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
  case "$soname" in ld-linux*) continue ;; esac
  path=$(ldd "$out/cnbackup" | awk -v l="$soname" '$1 == l { print $3 }')
  [ -n "$path" ] || { echo "build-image-context: $soname is not found on this machine" >&2; exit 1; }
  package=$( (dpkg -S "$path" 2>/dev/null || dpkg -S "$(realpath "$path")" 2>/dev/null) | head -n 1 | cut -d: -f1)
  [ -n "$package" ] || { echo "build-image-context: no Debian package owns $path ($soname)" >&2; exit 1; }
  case " $base_packages " in *" $package "*) continue ;; esac
  echo "$runtime" | grep -Eq "(^|[[:space:]])$package([[:space:]]|$)" || missing="$missing $package($soname)"
done
if [ -n "$missing" ]; then
  echo "build-image-context: the runtime stage does not install:$missing: cnbackup would not start in the image" >&2
  exit 1
fi
echo "$out/cnbackup"
