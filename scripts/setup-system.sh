#!/usr/bin/env bash
# The system tools the tests need, installed when missing; `make test` runs this first.
# Cheap when everything is there: one `command -v` per tool (and `java -version`).
# It installs with apt-get as root (or through `sudo -n`); when it cannot, it stops with
# one line naming the packages to install.
set -euo pipefail

# need TOOL APT_PACKAGE [CHECK]: TOOL must be on PATH (and the CHECK function must pass).
# A new tool is one line here.
tools() {
  need java     openjdk-17-jre-headless java_17_or_newer  # the Kafka broker the tests start
  need mvn      maven                                     # fetches the broker's jars
  need promtool prometheus                                # checks deploy/prometheus rules
  need chromium chromium                                  # the console's browser tests (Playwright)
  need npm      npm                                       # KEDA's CRD schemas (chart tests)
  need node     nodejs                                    # runs them
}

# helm is not an apt package: install-chart-tools.sh builds it once with Go (and fetches
# KEDA's schemas with npm) into ~/.cache/newsmon/chart-tools; cheap once done.
chart_tools() {
  "$BASH" "$(dirname "$0")/install-chart-tools.sh"
}

java_17_or_newer() {
  local major
  major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  [ -n "$major" ] && [ "$major" -ge 17 ]
}

need() {
  local tool=$1 package=$2 check=${3:-}
  if command -v "$tool" >/dev/null 2>&1 && { [ -z "$check" ] || "$check"; }; then return; fi
  missing+=("$tool (package $package)") packages+=("$package")
}

find_missing() {
  missing=() packages=()
  tools
}

listed() { local IFS=';'; echo "${missing[*]}" | sed 's/;/, /g'; }

find_missing
if ((${#missing[@]} == 0)); then chart_tools; exit 0; fi

sudo=()
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
fi
if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" != 0 ] && ((${#sudo[@]} == 0)); }; then
  echo "setup-system: missing $(listed); install them (e.g. sudo apt-get install ${packages[*]}) and run make test again" >&2
  exit 1
fi

echo "setup-system: installing ${packages[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2
find_missing
if ((${#missing[@]})); then
  echo "setup-system: still missing after apt-get install: $(listed)" >&2
  exit 1
fi
chart_tools
