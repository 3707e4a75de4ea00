# Installs and starts Prometheus and Alertmanager (Debian's `prometheus` and
# `prometheus-alertmanager`) for the telemetry and alerting integration tests.
# Sourced by scripts/test.sh: appends the server pids to PIDS and exports
#   HOIST_TEST_PROMETHEUS_URL               Prometheus, http://127.0.0.1:PORT
#   HOIST_TEST_ALERTMANAGER_URL             Alertmanager, http://127.0.0.1:PORT
#   HOIST_TEST_PROMETHEUS_SCRAPE_ADDR       127.0.0.1:PORT that Prometheus scrapes every second
#                                           (job `hoist`); a test serves /metrics there
#   HOIST_TEST_ALERTMANAGER_WEBHOOK_ADDR    127.0.0.1:PORT that Alertmanager's only receiver posts
#                                           to (`/alerts`, resolved notifications on); a test
#                                           listens there
# Everything listens on 127.0.0.1 only (Alertmanager's cluster listener is disabled). State and
# logs live under $HOIST_TEST_STATE/prometheus; each run starts with empty storage.

prom_state="${HOIST_TEST_STATE:?HOIST_TEST_STATE must be set}/prometheus"

if ! command -v prometheus >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  echo "prometheus: installing prometheus and prometheus-alertmanager with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-alertmanager >/dev/null
fi

# A free port on 127.0.0.1, chosen by the kernel (python3 when present, else a scan with bash).
prom_free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    return
  fi
  local port
  for port in $(seq 20000 20999); do
    if ! (exec 2>/dev/null; exec 3<>"/dev/tcp/127.0.0.1/$port"); then
      echo "$port"
      return
    fi
  done
  echo "prometheus: no free port found" >&2
  return 1
}

# Whether GET http://127.0.0.1:$1$2 answers 200 (bash only: no curl on a fresh machine).
prom_http_ok() {
  local status
  status="$(
    exec 2>/dev/null
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    head -n 1 <&3
  )" 2>/dev/null || return 1
  [[ "$status" == *" 200 "* ]]
}

prom_wait_ready() { # port name log
  for _ in $(seq 1 300); do
    if prom_http_ok "$1" /-/ready; then
      return 0
    fi
    sleep 0.1
  done
  echo "prometheus: $2 on port $1 did not become ready in 30 s; its log:" >&2
  cat "$3" >&2
  return 1
}

rm -rf "$prom_state"
mkdir -p "$prom_state/prometheus-data" "$prom_state/alertmanager-data"

prom_port="$(prom_free_port)"
prom_am_port="$(prom_free_port)"
prom_scrape_port="$(prom_free_port)"
prom_webhook_port="$(prom_free_port)"

cat >"$prom_state/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$prom_port"]
  - job_name: hoist
    static_configs:
      - targets: ["127.0.0.1:$prom_scrape_port"]
EOF

cat >"$prom_state/alertmanager.yml" <<EOF
route:
  receiver: hoist-test
  group_by: ["alertname", "provider", "group"]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hoist-test
    webhook_configs:
      - url: "http://127.0.0.1:$prom_webhook_port/alerts"
        send_resolved: true
EOF

prometheus \
  --config.file="$prom_state/prometheus.yml" \
  --storage.tsdb.path="$prom_state/prometheus-data" \
  --storage.tsdb.retention.time=1d \
  --web.listen-address="127.0.0.1:$prom_port" \
  >"$prom_state/prometheus.log" 2>&1 &
PIDS+=("$!")

prometheus-alertmanager \
  --config.file="$prom_state/alertmanager.yml" \
  --storage.path="$prom_state/alertmanager-data" \
  --web.listen-address="127.0.0.1:$prom_am_port" \
  --cluster.listen-address= \
  >"$prom_state/alertmanager.log" 2>&1 &
PIDS+=("$!")

prom_wait_ready "$prom_port" prometheus "$prom_state/prometheus.log"
prom_wait_ready "$prom_am_port" alertmanager "$prom_state/alertmanager.log"

export HOIST_TEST_PROMETHEUS_URL="http://127.0.0.1:$prom_port"
export HOIST_TEST_ALERTMANAGER_URL="http://127.0.0.1:$prom_am_port"
export HOIST_TEST_PROMETHEUS_SCRAPE_ADDR="127.0.0.1:$prom_scrape_port"
export HOIST_TEST_ALERTMANAGER_WEBHOOK_ADDR="127.0.0.1:$prom_webhook_port"
echo "prometheus at $HOIST_TEST_PROMETHEUS_URL (scrapes $HOIST_TEST_PROMETHEUS_SCRAPE_ADDR)," \
  "alertmanager at $HOIST_TEST_ALERTMANAGER_URL (webhook to $HOIST_TEST_ALERTMANAGER_WEBHOOK_ADDR)"
