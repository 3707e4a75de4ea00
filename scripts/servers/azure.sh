# Starts the strict local fake of the Azure REST API (scripts/servers/azure_fake.py: Entra ID
# tokens, Resource Manager compute, Cost Management, Azure Monitor and the Retail Prices API on one
# port) for the Azure provider's integration tests.
# Sourced by scripts/test.sh: appends the server pid to PIDS and exports
#   HOIST_TEST_AZURE_URL   the fake, http://127.0.0.1:PORT (tests seed their own subscription with
#                          PUT /_fake/subscriptions/{guid}; the client secret is `fake-secret`)
# Python 3 standard library only: nothing to install. Listens on 127.0.0.1 only; its log lives in
# $HOIST_TEST_STATE/azure/azure-fake.log.

azure_state="${HOIST_TEST_STATE:?HOIST_TEST_STATE must be set}/azure"
mkdir -p "$azure_state"

# A free port on 127.0.0.1, chosen by the kernel.
azure_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

azure_wait_ready() { # url log
  if python3 - "$1" <<'PY'; then
import sys, time, urllib.request
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=1) as answer:
            if answer.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
PY
    return 0
  fi
  echo "azure: fake at $1 did not answer 200 within 10 s; its log:" >&2
  cat "$2" >&2
  return 1
}

azure_port="$(azure_free_port)"
python3 "$(dirname "${BASH_SOURCE[0]}")/azure_fake.py" --listen "127.0.0.1:$azure_port" \
  >"$azure_state/azure-fake.log" 2>&1 &
PIDS+=("$!")
azure_wait_ready "http://127.0.0.1:$azure_port/_fake/health" "$azure_state/azure-fake.log"
export HOIST_TEST_AZURE_URL="http://127.0.0.1:$azure_port"
echo "azure fake at $HOIST_TEST_AZURE_URL"
