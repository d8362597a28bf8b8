#!/usr/bin/env bash
# The whole peerstorm test suite. Installs what the tests need when it is missing:
#   - Debian: chromium (browser fixtures and interop tests; never a downloaded browser),
#     iproute2 and python3 (the lab's network namespaces and the programs run in them),
#     tshark (checks that the simulator's pcap files are real pcap),
#     coturn (the reference TURN server and its turnutils clients),
#     python3-junitparser (a JUnit consumer that reads peerstorm's junit.xml)
#   - npm: tools/js (peer@1.0.2, peerjs@1.5.5, playwright-core), pinned by package-lock.json
# then runs every test of the workspace (cargo-nextest when present, else cargo test) and the
# doc tests. Extra arguments go to the test runner, e.g. scripts/test.sh -p peerstorm-model.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

apt_need=()
[ -x /usr/bin/chromium ] || apt_need+=(chromium)
command -v tshark >/dev/null || apt_need+=(tshark)
[ -x /usr/bin/turnserver ] || apt_need+=(coturn)
command -v ip >/dev/null || apt_need+=(iproute2)
command -v python3 >/dev/null || apt_need+=(python3)
/usr/bin/python3 -c 'import junitparser' 2>/dev/null || apt_need+=(python3-junitparser)
if [ ${#apt_need[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing Debian packages: ${apt_need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_need[@]}" >/dev/null
fi

command -v node >/dev/null || { echo "scripts/test.sh: node is required (Node 20)" >&2; exit 2; }
if [ ! -f tools/js/node_modules/.package-lock.json ] || ! cmp -s tools/js/package-lock.json tools/js/node_modules/.peerstorm-lock; then
  echo "scripts/test.sh: installing npm packages in tools/js"
  (cd tools/js && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  cp tools/js/package-lock.json tools/js/node_modules/.peerstorm-lock
fi

# Doc tests first, so that the runner's summary is the last thing printed. The vendored crates
# under patches/ are workspace members so their unit tests (the patches' own among them) run
# below; their upstream doc examples are not ours to keep compiling.
cargo test --workspace --exclude rtc --exclude rtc-dtls --exclude rtc-ice --exclude rtc-turn --exclude rtc-sctp --exclude rtc-interceptor --doc "$@"
# Two upstream rtc-turn tests query stun1.l.google.com; there is no internet here
# (patches/rtc-turn/PEERSTORM.md). They are the only tests left out, and the summary counts them.
online=test_client_with_stun_send_binding_request
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast -E "not (package(rtc-turn) and test(/$online/))" "$@"
else
  cargo test --workspace --no-fail-fast "$@" -- --skip "$online"
fi
