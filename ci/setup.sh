#!/usr/bin/env bash
# Set-up from nothing, idempotent: Debian packages, .venv, a Docker engine, images.
# A second run only checks and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VAR="$PWD/var"
mkdir -p "$VAR"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. Debian packages (only the missing ones). chromium: the browser tests (Playwright drives
#    Debian's build). redis-server: the broker of distributed jobs (the tests start their own on
#    a loopback port; nothing here starts it). autoconf, automake and a C compiler build
#    DTLSSocket (DTLS-PSK for LwM2M), which PyPI has only as source, in .venv and for the device
#    image. Node.js and npm bring the web app's assets and run the LwM2M interop suite's
#    independent implementation (Debian's nodejs and npm, unless a Node.js with its own npm is
#    installed already).
PKGS=(docker.io mmdebstrap qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi postgresql
      chromium fonts-dejavu-core redis-server autoconf automake gcc libc6-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. The virtual environment, reinstalled only when pyproject.toml changes.
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || { say "creating .venv"; "$PYTHON" -m venv .venv; }
stamp=.venv/.tinymlaas-deps
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing the project into .venv"
  # tflite-micro only has pre-releases; pyproject pins one exactly, which pip
  # accepts without a global --pre (that would also pull other packages' betas).
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
# tf-keras (Keras 2): TensorFlow's converter fuses its LSTM layer into UNIDIRECTIONAL_SEQUENCE_LSTM
# (Keras 3's becomes a WHILE loop); the aot tests convert with it. It names the `tensorflow`
# distribution as its dependency, whose code tensorflow-cpu already installed: no dependencies.
compgen -G '.venv/lib/python3*/site-packages/tf_keras/__init__.py' >/dev/null ||
  .venv/bin/pip install -q --no-deps 'tf-keras==2.21.0'

# 2b. The LwM2M interop suite's independent implementation (lwm2m-node-lib from npm), pinned
#     by ci/interop/package-lock.json; reinstalled only when the lock file changes.
stamp=ci/interop/node_modules/.tinymlaas-lock
want=$(sha256sum ci/interop/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing the LwM2M interop suite's lwm2m-node-lib (npm ci)"
  npm ci --prefix ci/interop --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# 3. The web app's browser assets (htmx, Chart.js, Swagger UI, ReDoc): npm packages pinned by
#    web/package-lock.json (npm ci, reinstalled only when the lock changes; no install scripts),
#    copied into web/dist, which the service serves. Nothing is fetched when a page loads.
stamp=web/node_modules/.tinymlaas-lock
want=$(sha256sum web/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing the web app's npm packages"
  (cd web && npm ci --prefer-offline --no-audit --no-fund --ignore-scripts --loglevel=error)
  echo "$want" > "$stamp"
fi
node web/build.mjs >/dev/null

# 4. A Docker engine: no default bridge and no iptables rules; containers use
#    --network host (loopback only) or --network none.
if ! docker info >/dev/null 2>&1; then
  say "starting dockerd (log: var/dockerd.log)"
  setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false \
    >"$VAR/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -n 20 "$VAR/dockerd.log"; echo "dockerd did not start" >&2; exit 1; }
fi

# 5. Images, built offline; rebuilt only when their inputs' hash changes.
.venv/bin/tinymlaas images
