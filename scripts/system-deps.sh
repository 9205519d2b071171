#!/usr/bin/env bash
# Debian packages skuvid needs beyond Python: installed only when missing.
set -euo pipefail
needed=()
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || needed+=(postgresql)
command -v espeak-ng >/dev/null 2>&1 || needed+=(espeak-ng)
# Debian's Chromium: the gallery test plays every published clip in it (never a downloaded browser build).
command -v chromium >/dev/null 2>&1 || needed+=(chromium)
# Redis: the Celery broker for runs on several machines; the tests start their own on 127.0.0.1.
command -v redis-server >/dev/null 2>&1 || needed+=(redis-server)
if [ ${#needed[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "installing Debian packages: ${needed[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${needed[@]}"
fi
