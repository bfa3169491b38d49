#!/usr/bin/env bash
# Installs Debian's `chromium` when it is missing; `make test` runs it first, since
# tests/ui/test_page.py drives the page at /ui in it (through playwright's driver, never
# a browser build of playwright's own). As root it runs apt-get, otherwise through
# `sudo -n`; with neither it fails in one line.
set -euo pipefail

PACKAGE=chromium
BROWSER=/usr/bin/chromium

die() { printf 'install-chromium.sh: %s\n' "$*" >&2; exit 1; }

[[ -x $BROWSER ]] && exit 0
command -v apt-get >/dev/null || die "$BROWSER is missing and there is no apt-get: install Chromium"
if [[ $EUID -eq 0 ]]; then
  AS_ROOT=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  AS_ROOT=(sudo -n)
else
  die "$BROWSER is missing and installing $PACKAGE needs root: run 'apt-get install -y --no-install-recommends $PACKAGE' as root"
fi

apt() {
  "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -q -o DPkg::Lock::Timeout=300 "$@"
}

echo "installing $PACKAGE with apt-get for the browser test (once)..." >&2
if ! apt install -y --no-install-recommends "$PACKAGE" >/dev/null 2>&1; then
  apt update >/dev/null
  apt install -y --no-install-recommends "$PACKAGE" >/dev/null || die "apt-get install $PACKAGE failed"
fi
[[ -x $BROWSER ]] || die "$PACKAGE is installed but $BROWSER is not there"
"$BROWSER" --version 2>&1 | head -1 >&2
