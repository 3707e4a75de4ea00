# Installs and starts moto, the AWS API emulator, for the AWS provider's integration tests.
# Sourced by scripts/test.sh: appends the server pids to PIDS and exports
#   HOIST_TEST_MOTO_URL        moto itself (Auto Scaling, EC2, Cost Explorer, ... on one port)
#   HOIST_TEST_CLOUDWATCH_URL  a small proxy in front of moto that translates the CloudWatch
#                              Smithy RPC v2 CBOR protocol (spoken by aws-sdk-cloudwatch) to the
#                              JSON protocol moto serves (scripts/servers/moto_cbor_proxy.py)
# The virtualenv is cached under $HOIST_TEST_STATE/moto-venv; the first run installs moto[server]
# and cbor2 from PyPI (about 95 s), later runs reuse it.

moto_state="${HOIST_TEST_STATE:?HOIST_TEST_STATE must be set}/moto"
moto_venv="$HOIST_TEST_STATE/moto-venv"
moto_version="${HOIST_MOTO_VERSION:-5.2.*}"
mkdir -p "$moto_state"

if [[ ! -x "$moto_venv/bin/moto_server" || ! -f "$moto_venv/.hoist-installed" ]]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    echo "moto: installing python3-venv with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$moto_venv"
  python3 -m venv "$moto_venv"
  "$moto_venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version" "cbor2>=5.6"
  touch "$moto_venv/.hoist-installed"
fi

# A free port on 127.0.0.1, chosen by the kernel.
moto_free_port() {
  "$moto_venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

moto_wait_ready() { # url log
  for _ in $(seq 1 100); do
    if "$moto_venv/bin/python" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "moto: server at $1 did not become ready; its log:" >&2
  cat "$2" >&2
  return 1
}

moto_port="$(moto_free_port)"
"$moto_venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$moto_state/moto.log" 2>&1 &
PIDS+=("$!")
moto_wait_ready "http://127.0.0.1:$moto_port/moto-api/" "$moto_state/moto.log"
export HOIST_TEST_MOTO_URL="http://127.0.0.1:$moto_port"

moto_proxy_port="$(moto_free_port)"
"$moto_venv/bin/python" "$(dirname "${BASH_SOURCE[0]}")/moto_cbor_proxy.py" \
  --listen "127.0.0.1:$moto_proxy_port" --upstream "$HOIST_TEST_MOTO_URL" \
  >"$moto_state/cbor-proxy.log" 2>&1 &
PIDS+=("$!")
moto_wait_ready "http://127.0.0.1:$moto_proxy_port/ready" "$moto_state/cbor-proxy.log"
export HOIST_TEST_CLOUDWATCH_URL="http://127.0.0.1:$moto_proxy_port"
echo "moto at $HOIST_TEST_MOTO_URL, CloudWatch CBOR proxy at $HOIST_TEST_CLOUDWATCH_URL"

# The standard AWS credential chain (used by `hoist` and `provider_set_from_settings`) needs some
# credentials, and moto accepts any. Credentials already in the environment are left alone.
if [[ -z "${AWS_ACCESS_KEY_ID:-}" && -z "${AWS_PROFILE:-}" ]]; then
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
fi
