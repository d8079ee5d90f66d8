#!/usr/bin/env bash
# Make Docker usable on a bare Debian machine, for `docker compose up demo` and the
# suite's Docker leg (`make docker-ready` runs this):
#   1. the engine: Debian's docker.io when no `dockerd` is installed (root only);
#   2. a running daemon: starts dockerd when none answers;
#   3. `docker compose` v2: built from the Go module proxy when the plugin is missing
#      (Debian 12 does not package it);
#   4. the base image: when $CLICKFAN_DOCKER_BASE (default debian:bookworm-slim) can be
#      neither found locally nor pulled, a Debian made with debootstrap from the mirror
#      apt already uses, imported under that name;
#   5. the host's extra certificate authorities (/usr/local/share/ca-certificates),
#      copied into compose/docker/ca/ so the image build trusts what the host trusts.
# Each step says what it does; a step that cannot be done says why and exits 1.
set -euo pipefail

BASE=${CLICKFAN_DOCKER_BASE:-debian:bookworm-slim}
COMPOSE_VERSION=v2.32.4
PLUGIN_DIR=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

say() { printf 'docker-ready: %s\n' "$*"; }
fail() { say "$*" >&2; exit 1; }
as_root() { [ "$(id -u)" = 0 ] || fail "$1 needs root (run as root, or do it by hand: $2)"; }

# 1. engine
if ! command -v dockerd >/dev/null; then
  as_root "installing docker.io" "apt-get install docker.io"
  say "installing Debian's docker.io"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

# 2. daemon
if ! docker info >/dev/null 2>&1; then
  as_root "starting dockerd" "dockerd &"
  say "starting dockerd (log: /var/log/clickfan-dockerd.log)"
  nohup dockerd >/var/log/clickfan-dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || fail "dockerd did not answer within 60 s; see /var/log/clickfan-dockerd.log"
fi

# 3. compose v2
if ! docker compose version >/dev/null 2>&1; then
  command -v go >/dev/null || fail "docker compose is missing and Go is not installed to build it"
  say "building docker compose $COMPOSE_VERSION from the Go module proxy (about 2 minutes)"
  gobin=$(mktemp -d)
  GOBIN=$gobin go install \
    -ldflags "-X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
    "github.com/docker/compose/v2/cmd@$COMPOSE_VERSION"
  mkdir -p "$PLUGIN_DIR"
  install -m 0755 "$gobin/cmd" "$PLUGIN_DIR/docker-compose"
  rm -rf "$gobin"
fi

# 4. base image
if ! docker image inspect "$BASE" >/dev/null 2>&1 && ! docker pull -q "$BASE" >/dev/null 2>&1; then
  as_root "debootstrap" "apt-get install debootstrap"
  command -v debootstrap >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  # the mirror apt is configured with (deb822 sources first, then sources.list)
  mirror=$(grep -hoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '{print $2}' | grep -v security | head -n 1 || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || fail "no Debian mirror found in apt's sources to debootstrap from"
  suite=${BASE#*:}; suite=${suite%%-*}
  root=$(mktemp -d)
  say "cannot pull $BASE: making it with debootstrap ($suite, minbase) from $mirror"
  debootstrap --variant=minbase "$suite" "$root" "$mirror" >/dev/null
  tar -C "$root" -c . | docker import - "$BASE" >/dev/null
  rm -rf "$root"
fi

# 5. the host's extra certificate authorities, for the image build's downloads
mkdir -p "$(dirname "$0")/ca"
find "$(dirname "$0")/ca" -name '*.crt' -delete
for crt in /usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt; do
  [ -f "$crt" ] && cp "$crt" "$(dirname "$0")/ca/"
done

say "ready: $(docker version --format 'engine {{.Server.Version}}'), $(docker compose version --short | sed 's/^/compose /'), base $BASE"
