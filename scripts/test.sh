#!/usr/bin/env bash
# Install what the tests need, then run them all (unit, AppTest and real-browser tests).
# Used by README's quick start and by CI (.ci/run), so the two can never drift apart.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
"$PY" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

# The browser tests drive a real Chromium through Playwright. Debian's package where apt works
# (Playwright finds it at /usr/bin/chromium), else Playwright's own download.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  else
    "$PY" -m playwright install chromium
  fi
fi

exec "$PY" -m pytest -q "$@"
