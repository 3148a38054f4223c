#!/usr/bin/env bash
# Fetches Tailcall 1.6.14 (its Linux x86-64 build, a package of the npm registry) into
# target/tailcall/ for the side-by-side benchmark (`--tailcall target/tailcall/tailcall`).
# That build needs glibc 2.39; where the system's is older (Debian 12 has 2.36), a
# minimal Debian 13 tree is made with debootstrap from apt's own mirror, and the wrapper
# runs Tailcall through that tree's loader and libraries. Idempotent. Not used by CI.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$root/target/tailcall
version=1.6.14
mkdir -p "$dir"
if [ ! -x "$dir/package/bin/tailcall" ]; then
  (cd "$dir" && npm pack --silent "@tailcallhq/core-linux-x64-gnu@$version" >/dev/null \
    && tar xzf "tailcallhq-core-linux-x64-gnu-$version.tgz")
fi
bin=$dir/package/bin/tailcall
glibc=$(ldd --version | head -1 | grep -oE '[0-9]+\.[0-9]+$')
if [ "$(printf '%s\n2.39\n' "$glibc" | sort -V | head -1)" != 2.39 ]; then
  # The system's glibc is older than 2.39.
  rootfs=$dir/trixie
  if [ ! -f "$rootfs/lib/x86_64-linux-gnu/libc.so.6" ]; then
    command -v debootstrap >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
    mirror=$(grep -h -E '^URIs: ' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
    [ -n "$mirror" ] || mirror=$(grep -h -E '^deb ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')
    rm -rf "$rootfs"
    debootstrap --variant=minbase trixie "$rootfs" "$mirror" > "$dir/debootstrap.log" 2>&1
  fi
  cat > "$dir/tailcall" <<WRAP
#!/bin/sh
exec "$rootfs/lib64/ld-linux-x86-64.so.2" --library-path "$rootfs/lib/x86_64-linux-gnu:$rootfs/usr/lib/x86_64-linux-gnu" "$bin" "\$@"
WRAP
else
  ln -sf "$bin" "$dir/tailcall"
fi
chmod +x "$dir/tailcall"
"$dir/tailcall" --version | head -1
