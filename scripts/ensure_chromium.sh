#!/usr/bin/env bash
# The dashboard's browser tests drive Debian's Chromium through Playwright
# (Playwright's own browser downloads are not used). Install it when missing
# and when we can (root with apt-get); otherwise say so: those tests then skip
# with that reason.
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Chromium for the browser tests (apt-get install -y chromium) …"
  (apt-get install -y chromium >/tmp/shelly-chromium-install.log 2>&1 ||
    { apt-get update >/dev/null 2>&1 && apt-get install -y chromium >/tmp/shelly-chromium-install.log 2>&1; }) ||
    echo "Could not install Chromium (see /tmp/shelly-chromium-install.log): the browser tests will be skipped." >&2
else
  echo "Chromium is not installed (sudo apt-get install -y chromium): the browser tests will be skipped." >&2
fi
exit 0
