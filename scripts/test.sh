#!/usr/bin/env bash
# The test command of README.md: installs what the tests need on a fresh Debian
# machine, then runs them. Arguments go to `cargo test` (e.g. `scripts/test.sh --test api`).
#
# The multi-replica tests (tests/binary/redis_replicas.rs) start their own redis-server
# on a free port: Debian's package, installed here when missing (as root, or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null; then
  echo "== installing Debian's redis-server (the multi-replica tests need it)"
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "need root or sudo to apt-get install redis-server" >&2; exit 1; }
    sudo=sudo
  fi
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server
  # The package may start a system service; the tests run their own servers.
  $sudo systemctl stop redis-server 2>/dev/null || true
fi

exec cargo test --locked "$@"
