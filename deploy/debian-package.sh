#!/usr/bin/env bash
# Installs a Debian package when the program a test needs is missing: `make test` calls
# it for promtool (package prometheus) and for chromium (the page's browser test), so a
# fresh machine gets them from the project's own files.
# Usage: debian-package.sh PACKAGE PROGRAM WHY
# As root it runs apt-get, otherwise through `sudo -n`; with neither it fails in one line.
# A package's service is not started: a policy-rc.d that denies it is in place for the
# install unless the machine already has one.
set -euo pipefail

PACKAGE=$1
PROGRAM=$2
WHY=$3
POLICY=/usr/sbin/policy-rc.d

die() { printf 'debian-package.sh: %s\n' "$*" >&2; exit 1; }

command -v "$PROGRAM" >/dev/null && exit 0
command -v apt-get >/dev/null || die "$PROGRAM is missing and there is no apt-get: install $PACKAGE"
if [[ $EUID -eq 0 ]]; then
  AS_ROOT=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  AS_ROOT=(sudo -n)
else
  die "$PROGRAM is missing and installing $PACKAGE needs root: run 'apt-get install -y --no-install-recommends $PACKAGE' as root"
fi

apt() {
  "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -q -o DPkg::Lock::Timeout=300 "$@"
}

if [[ ! -e $POLICY ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${AS_ROOT[@]}" tee "$POLICY" >/dev/null
  "${AS_ROOT[@]}" chmod 755 "$POLICY"
  trap '"${AS_ROOT[@]}" rm -f "$POLICY"' EXIT
fi

echo "installing $PACKAGE with apt-get $WHY (once)..." >&2
if ! apt install -y --no-install-recommends "$PACKAGE" >/dev/null 2>&1; then
  apt update >/dev/null
  apt install -y --no-install-recommends "$PACKAGE" >/dev/null || die "apt-get install $PACKAGE failed"
fi
command -v "$PROGRAM" >/dev/null || die "$PACKAGE is installed but $PROGRAM is not on PATH"
"$PROGRAM" --version 2>&1 | head -1 >&2
