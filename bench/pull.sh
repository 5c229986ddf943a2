#!/bin/bash
# Image pull benchmark, side by side in one run: berth pull against
# skopeo copy + umoci unpack and, when present, podman and docker, pulling a
# 6-layer ~200 MB image from Debian's docker-registry on 127.0.0.1; then
# berth import against GNU tar -x on the same layers, uncompressed.
#
#   sudo bench/pull.sh [-n 5] [--only berth,skopeo+umoci] [--json out.json] [--help]
#
# The work is done by bench/pull_image.py; this wrapper owns the scratch
# directory and removes it, and stops the registry, whatever happens (trap EXIT).
# BERTH=/path/to/berth picks the binary (default <repo>/build/src/cli/berth).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then
  echo "pull.sh: needs root (umoci unpack, berth's store, podman/docker)" >&2
  exit 2
fi
py=${PYTHON:-/usr/bin/python3}
[ -x "$py" ] || py=python3

work=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-bench-pull.XXXXXX")
cleanup() {
  if [ -s "$work/registry.pid" ]; then
    kill "$(cat "$work/registry.pid")" 2>/dev/null || true
  fi
  # anything a tool left mounted under the scratch dir (deepest first)
  awk -v p="$work/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$work"
}
pypid=
stop() {  # forward INT/TERM to the benchmark, let it clean up, then leave
  if [ -n "$pypid" ]; then
    kill -TERM "$pypid" 2>/dev/null || true
    wait "$pypid" 2>/dev/null || true
  fi
  exit "$1"
}
trap cleanup EXIT
trap 'stop 130' INT
trap 'stop 143' TERM
trap 'stop 129' HUP

# In the background so that the traps above run at once, not when it exits.
"$py" "$here/pull_image.py" --workdir "$work" "$@" &
pypid=$!
rc=0
wait "$pypid" || rc=$?
pypid=
exit "$rc"
