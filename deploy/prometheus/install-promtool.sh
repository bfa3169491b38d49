#!/usr/bin/env bash
# Installs promtool (Debian's `prometheus` package) when it is missing; `make test` runs
# it first, since tests/operations/test_prometheus_rules.py checks the rules with it.
# As root it runs apt-get, otherwise through `sudo -n`; with neither it fails in one line.
# The package's service is not started: a policy-rc.d that denies it is in place for the
# install unless the machine already has one.
set -euo pipefail

PACKAGE=prometheus
POLICY=/usr/sbin/policy-rc.d

die() { printf 'install-promtool.sh: %s\n' "$*" >&2; exit 1; }

command -v promtool >/dev/null && exit 0
command -v apt-get >/dev/null || die "promtool is missing and there is no apt-get: install Prometheus's promtool"
if [[ $EUID -eq 0 ]]; then
  AS_ROOT=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  AS_ROOT=(sudo -n)
else
  die "promtool is missing and installing $PACKAGE needs root: run 'apt-get install -y --no-install-recommends $PACKAGE' as root"
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

echo "installing $PACKAGE with apt-get for promtool (once)..." >&2
if ! apt install -y --no-install-recommends "$PACKAGE" >/dev/null 2>&1; then
  apt update >/dev/null
  apt install -y --no-install-recommends "$PACKAGE" >/dev/null || die "apt-get install $PACKAGE failed"
fi
command -v promtool >/dev/null || die "$PACKAGE is installed but promtool is not on PATH"
promtool --version 2>&1 | head -1 >&2
