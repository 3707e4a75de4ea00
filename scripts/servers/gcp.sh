# Starts the strict local fake of the Google Cloud REST APIs (scripts/servers/gcp_fake.py: Compute
# Engine managed instance groups, instance templates, machine types, zones and operations, Cloud
# Monitoring, the Cloud Billing Catalog and BigQuery on one port) for the GCP provider's
# integration tests.
# Sourced by scripts/test.sh: appends the server pid to PIDS and exports
#   HOIST_TEST_GCP_URL   the fake, http://127.0.0.1:PORT (tests seed their own project with
#                        PUT /_fake/projects/{project}; clients use anonymous credentials)
# Python 3 standard library only: nothing to install. Listens on 127.0.0.1 only; its log lives in
# $HOIST_TEST_STATE/gcp/gcp-fake.log.

gcp_state="${HOIST_TEST_STATE:?HOIST_TEST_STATE must be set}/gcp"
mkdir -p "$gcp_state"

# A free port on 127.0.0.1, chosen by the kernel.
gcp_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

gcp_wait_ready() { # url log
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
  echo "gcp: fake at $1 did not answer 200 within 10 s; its log:" >&2
  cat "$2" >&2
  return 1
}

gcp_port="$(gcp_free_port)"
python3 "$(dirname "${BASH_SOURCE[0]}")/gcp_fake.py" --listen "127.0.0.1:$gcp_port" \
  >"$gcp_state/gcp-fake.log" 2>&1 &
PIDS+=("$!")
gcp_wait_ready "http://127.0.0.1:$gcp_port/_fake/health" "$gcp_state/gcp-fake.log"
export HOIST_TEST_GCP_URL="http://127.0.0.1:$gcp_port"
echo "gcp fake at $HOIST_TEST_GCP_URL"
