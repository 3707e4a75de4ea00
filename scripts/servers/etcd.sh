# Installs and starts a standalone etcd (Debian's `etcd-server`) for the leader-election tests
# (integration-tests/tests/etcd.rs), and the protobuf compiler and well-known types
# (`protobuf-compiler`, `libprotobuf-dev`) that the build of the `etcd-client` crate needs:
# scripts/test.sh sources this before it builds anything.
# Sourced by scripts/test.sh: appends the server pid to PIDS and exports
#   HOIST_TEST_ETCD_URL   etcd's client URL, http://127.0.0.1:PORT
# Listens on 127.0.0.1 only, on free ports; starts with an empty data dir each run. State and log
# live under $HOIST_TEST_STATE/etcd.

# A free port on 127.0.0.1, chosen by the kernel (python3 when present, else a scan with bash).
etcd_free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    return
  fi
  local port
  for port in $(seq 22000 22999); do
    if ! (exec 2>/dev/null; exec 3<>"/dev/tcp/127.0.0.1/$port"); then
      echo "$port"
      return
    fi
  done
  echo "etcd: no free port found" >&2
  return 1
}

etcd_apt_install() { # package...
  echo "etcd: installing $* with apt-get" >&2
  apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Whether GET http://127.0.0.1:$1$2 answers 200 (bash only).
etcd_http_ok() { # port path
  local status
  status="$(
    exec 2>/dev/null
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    head -n 1 <&3
  )" 2>/dev/null || return 1
  [[ "$status" == *" 200 "* ]]
}

etcd_start() {
  local state="${HOIST_TEST_STATE:?HOIST_TEST_STATE must be set}/etcd"

  local -a missing=()
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
  # etcd's .proto files import google/protobuf/descriptor.proto, which protoc does not ship.
  [[ -f /usr/include/google/protobuf/descriptor.proto ]] || missing+=(libprotobuf-dev)
  if ((${#missing[@]})); then
    etcd_apt_install "${missing[@]}" || return 1
  fi

  rm -rf "$state"
  mkdir -p "$state/data" || return 1
  chmod 700 "$state/data"

  local port peer_port
  port="$(etcd_free_port)" && peer_port="$(etcd_free_port)" || return 1
  etcd --name hoist-leader-test \
    --data-dir "$state/data" \
    --listen-client-urls "http://127.0.0.1:$port" \
    --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "hoist-leader-test=http://127.0.0.1:$peer_port" \
    --initial-cluster-state new \
    --logger zap --log-outputs stderr \
    >"$state/etcd.log" 2>&1 &
  PIDS+=("$!")
  local pid="$!"

  local deadline=$((SECONDS + 30))
  until etcd_http_ok "$port" /health; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "etcd: exited; the end of its log ($state/etcd.log):" >&2
      tail -n 50 "$state/etcd.log" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "etcd: not healthy after 30 s; the end of its log ($state/etcd.log):" >&2
      tail -n 50 "$state/etcd.log" >&2
      return 1
    fi
    sleep 0.2
  done

  export HOIST_TEST_ETCD_URL="http://127.0.0.1:$port"
  echo "etcd at $HOIST_TEST_ETCD_URL (log in $state/etcd.log)"
}

etcd_start
