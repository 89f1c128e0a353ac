#!/usr/bin/env bash
# Build tinymlaas/service:<hash of its inputs> offline, FROM tinymlaas/base: the project and its
# dependencies are downloaded as wheels on the host first (pip, the machine's own index), then the
# image is built with --network none. Prints the tag.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ctx=var/images/contexts/tinymlaas_service
rm -rf "$ctx" && mkdir -p "$ctx/wheels"
.venv/bin/tinymlaas images >/dev/null           # the base (and the builders) first
$PY -m pip wheel -q --no-deps -w "$ctx/wheels" . >/dev/null
whl=$(ls "$ctx"/wheels/tinymlaas-*.whl)
# Wheels for the base's own Python (Debian's), whose version decides some dependencies; pip
# judges python_full_version markers by the host's Python, so those are named here (redis needs
# async-timeout below 3.11.3).
pyver=$(docker run --rm --network none tinymlaas/base python3 -c 'import platform; print(platform.python_version())')
$PY -m pip download -q --only-binary=:all: --python-version "$pyver" -d "$ctx/wheels" "$whl[train]" \
  async-timeout >/dev/null
# PostgreSQL and Redis for the compose file's own database and broker: Debian packages missing
# from the base (relative to its dpkg status), downloaded with the host's apt.
mkdir -p "$ctx/debs/partial"
apt-get install -y -qq --download-only --no-install-recommends -o Debug::NoLocking=1 \
  -o Dir::State::status=var/images/base.dpkg-status -o Dir::Cache::archives="$PWD/$ctx/debs" \
  postgresql redis-server >/dev/null
rm -rf "$ctx/debs/partial" "$ctx/debs/lock"
cp deploy/Dockerfile "$ctx/" && cp -r targets "$ctx/targets"
hash=$( (docker image inspect -f '{{.Id}}' tinymlaas/base; cat pyproject.toml deploy/Dockerfile;
         find tinymlaas targets -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum) \
        | sha256sum | cut -c1-16)
tag="tinymlaas/service:$hash"
docker image inspect "$tag" >/dev/null 2>&1 || docker build -q --network none -t "$tag" "$ctx" >/dev/null
echo "$tag"
