#!/usr/bin/env bash
# The whole test suite: installs the real servers the tests drive (when
# missing), then go vet, a gofmt check and go test -race over every package.
# Usage: bash scripts/test.sh [go test flags...]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use, as "binary:package".
need=(
  rsyslogd:rsyslog
  nats-server:nats-server
  redis-server:redis-server
  patch:patch
  ip:iproute2
  tc:iproute2
  curl:curl
  dig:dnsutils
  swaks:swaks
  clamd:clamav-daemon
  rspamd:rspamd
  7zz:7zip
  lsar:unar
  chromium:chromium
)
missing=()
for pair in "${need[@]}"; do
  bin=${pair%%:*} pkg=${pair#*:}
  if ! command -v "$bin" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$bin" ]; then
    missing+=("$pkg")
  fi
done
# rsyslog's TLS driver is a plugin, not a binary.
if ! ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1; then
  missing+=(rsyslog-gnutls)
fi
# The console's browser test screenshots Japanese pages: a Japanese font.
if ! ls /usr/share/fonts/opentype/ipafont-gothic/ipag.ttf >/dev/null 2>&1; then
  missing+=(fonts-ipafont-gothic)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
fi
export PATH="$PATH:/usr/sbin:/sbin"

echo "== go vet"
go vet ./...

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi

echo "== go test -race"
go test -race -timeout 20m "$@" ./...
