# Builds (once) and starts a real Kubernetes control plane for the Kubernetes provider's integration
# tests: etcd, kube-apiserver 1.20.2 and kube-controller-manager (so Deployments get ReplicaSets and
# Pods; there is no scheduler or kubelet, so Pods stay Pending).
# Sourced by scripts/test.sh: appends the server pids to PIDS and exports
#   HOIST_TEST_KUBE_URL              the apiserver, https://127.0.0.1:PORT (a serving certificate
#                                    signed by a per-run CA; the kubeconfigs carry that CA)
#   HOIST_TEST_KUBECONFIG            kubeconfig for an admin (group system:masters, bearer token)
#   HOIST_TEST_KUBECONFIG_LIMITED    kubeconfig for user `hoist-limited`, in no privileged group: RBAC
#                                    (the only authorizer) forbids it everything until a test binds
#                                    it to a role
#   HOIST_TEST_KUBECTL               the kubectl 1.20.2 built with the servers
# Everything listens on 127.0.0.1 only, on free ports; etcd starts with an empty data dir each run.
# State, keys and logs live under $HOIST_TEST_STATE/kube.
#
# No registry ships kube-apiserver binaries, so the first run builds them from Debian's `kubernetes`
# source package (fetched with `apt-get source` through a private apt configuration under the state
# dir; /etc/apt is left alone) with Debian's Go, after swapping the vendored
# github.com/modern-go/reflect2 for Debian's 1.0.2 (built with the vendored 1.0.1 and Go 1.19, the
# apiserver segfaults on its first YAML request).
# That takes about 12 minutes on 2 cores and ~3.5 GB of disk while it runs (the source tree and Go's
# caches are deleted afterwards); the three binaries (~250 MB) are kept in
# $HOIST_TEST_STATE/kube-1.20.2/bin and later runs start in about 10 s.
# etcd comes from Debian's `etcd-server`.

# A free port on 127.0.0.1, chosen by the kernel (python3 when present, else a scan with bash).
kube_free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    return
  fi
  local port
  for port in $(seq 21000 21999); do
    if ! (exec 2>/dev/null; exec 3<>"/dev/tcp/127.0.0.1/$port"); then
      echo "$port"
      return
    fi
  done
  echo "kube: no free port found" >&2
  return 1
}

kube_apt_install() { # package...
  echo "kube: installing $* with apt-get" >&2
  apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Builds kube-apiserver, kube-controller-manager and kubectl into $1/bin. Runs in its own
# `bash -euo pipefail` (see kube_ensure_binaries), so any failing command stops it.
kube_build() { # cache-dir
  local cache="${1:?}"
  local src="$cache/src" apt="$cache/apt"
  rm -rf "$src" "$apt" "${cache:?}/bin"
  mkdir -p "$src" "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources.list.d"

  # Only the deb-src line, only here: /etc/apt stays untouched.
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" \
    >"$apt/sources.list"
  local -a aptopts=(
    -o "Dir::Etc::SourceList=$apt/sources.list"
    -o "Dir::Etc::SourceParts=$apt/sources.list.d"
    -o "Dir::State::Lists=$apt/lists"
    -o "Dir::Cache=$apt/cache"
    -o "APT::Sandbox::User=root"
  )
  echo "kube: fetching Debian's kubernetes source package" >&2
  apt-get "${aptopts[@]}" update -qq
  (cd "$src" && apt-get "${aptopts[@]}" source -qq kubernetes >/dev/null)
  rm -rf "$apt"

  local tree
  tree="$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)"
  [[ -n "$tree" && -f "$tree/Makefile" ]] || { echo "kube: no source tree in $src" >&2; exit 1; }
  # The source must be 1.20.2 (the Debian version reads "1.20.5+really1.20.2").
  grep -q "tag: v1.20.2'" "$tree/hack/lib/version.sh" ||
    { echo "kube: $tree is not Kubernetes v1.20.2" >&2; exit 1; }

  # The vendored reflect2 1.0.1 does not work with Go >= 1.18 (the apiserver segfaults on its first
  # YAML request); Debian's 1.0.2 does.
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  cp -rL /usr/share/gocode/src/github.com/modern-go/reflect2 "$tree/vendor/github.com/modern-go/reflect2"
  rm -f "$tree/vendor/github.com/modern-go/reflect2/go.mod"

  echo "kube: building kube-apiserver, kube-controller-manager and kubectl 1.20.2 (~10 min);" \
    "log in $cache/build.log" >&2
  local start=$SECONDS
  # GOPATH mode (hack/lib/init.sh sets GO111MODULE=off); the Go cache (hack/lib/golang.sh) and
  # Go's temporary files go to _output in the tree, deleted with it.
  mkdir -p "$tree/_output/tmp"
  if ! (cd "$tree" && env -u GOFLAGS -u GOLDFLAGS -u GOGCFLAGS -u GOROOT -u GOPATH -u GOBIN \
    CGO_ENABLED=0 GO111MODULE=off GOTMPDIR="$tree/_output/tmp" HOME="$cache" \
    nice -n 10 make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kubectl") \
    >"$cache/build.log" 2>&1; then
    echo "kube: the build failed; the end of $cache/build.log:" >&2
    tail -n 60 "$cache/build.log" >&2
    exit 1
  fi
  mkdir -p "$cache/bin"
  local b
  for b in kube-apiserver kube-controller-manager kubectl; do
    cp "$tree/_output/bin/$b" "$cache/bin/$b"
  done
  [[ "$("$cache/bin/kube-apiserver" --version)" == *v1.20.2* ]] ||
    { echo "kube: the built kube-apiserver is not v1.20.2" >&2; exit 1; }
  echo "kubernetes v1.20.2 from Debian's source package, reflect2 from Debian; built in $((SECONDS - start)) s" \
    >"$cache/bin/.hoist-built"
  rm -rf "$src"
  echo "kube: built in $((SECONDS - start)) s" >&2
}

# Makes sure the three binaries are in $1/bin, building them when they are not.
kube_ensure_binaries() { # cache-dir
  local cache="$1" b
  if [[ -f "$cache/bin/.hoist-built" ]]; then
    for b in kube-apiserver kube-controller-manager kubectl; do
      [[ -x "$cache/bin/$b" ]] || rm -f "$cache/bin/.hoist-built"
    done
    [[ -f "$cache/bin/.hoist-built" ]] && return 0
  fi

  local -a missing=()
  command -v go >/dev/null 2>&1 || missing+=(golang-go)
  command -v make >/dev/null 2>&1 || missing+=(make)
  command -v rsync >/dev/null 2>&1 || missing+=(rsync)
  command -v dpkg-source >/dev/null 2>&1 || missing+=(dpkg-dev)
  command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
  [[ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ]] || missing+=(golang-github-modern-go-reflect2-dev)
  [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
  if ((${#missing[@]})); then
    kube_apt_install "${missing[@]}" || return 1
  fi

  mkdir -p "$cache"
  local avail_kb
  avail_kb="$(df -Pk "$cache" | awk 'NR == 2 { print $4 }')"
  if ((avail_kb < 4 * 1024 * 1024)); then
    echo "kube: building Kubernetes needs ~4 GB free next to $cache; only $((avail_kb / 1024)) MB are" >&2
    return 1
  fi

  # One build at a time; a run that waited here finds the binaries built.
  (
    flock 9
    [[ -f "$cache/bin/.hoist-built" ]] && exit 0
    bash -euo pipefail -c "$(declare -f kube_build); kube_build \"\$1\"" kube-build "$cache"
  ) 9>"$cache/.build.lock" || {
    echo "kube: could not build Kubernetes" >&2
    return 1
  }
}

# Whether GET http://127.0.0.1:$1$2 answers 200 (bash only).
kube_http_ok() { # port path
  local status
  status="$(
    exec 2>/dev/null
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    head -n 1 <&3
  )" 2>/dev/null || return 1
  [[ "$status" == *" 200 "* ]]
}

# Polls `cmd...` every 0.2 s until it succeeds; after $1 seconds, or when process $2 has died, prints
# the end of log $4 and fails.
kube_wait() { # seconds pid what log cmd...
  local seconds="$1" pid="$2" what="$3" log="$4"
  shift 4
  local deadline=$((SECONDS + seconds))
  while ((SECONDS < deadline)); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "kube: $what exited; the end of its log ($log):" >&2
      tail -n 100 "$log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "kube: $what was not ready after $seconds s; the end of its log ($log):" >&2
  tail -n 100 "$log" >&2
  return 1
}

# Whether the apiserver answers GET $4 (a path) with something, or, for $4 = sa-token, whether the
# `default` service account in `default` has its token secret; a check for kube_wait.
kube_api_ok() { # kubectl kubeconfig cache-dir path-or-check
  local out
  case "$4" in
  sa-token)
    out="$("$1" --kubeconfig "$2" --cache-dir "$3" --request-timeout=2s \
      -n default get serviceaccount default -o 'jsonpath={.secrets[0].name}')" || return 1
    [[ -n "$out" ]]
    ;;
  *)
    out="$("$1" --kubeconfig "$2" --cache-dir "$3" --request-timeout=2s get --raw "$4")" || return 1
    [[ -n "$out" ]]
    ;;
  esac
}

kube_write_kubeconfig() { # file url ca-file user token
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: hoist-test
    cluster:
      server: $2
      certificate-authority-data: $(base64 -w0 "$3")
users:
  - name: $4
    user:
      token: $5
contexts:
  - name: hoist-test
    context:
      cluster: hoist-test
      user: $4
      namespace: default
current-context: hoist-test
EOF
}

kube_start() {
  local state="${HOIST_TEST_STATE:?HOIST_TEST_STATE must be set}/kube"
  local cache="$HOIST_TEST_STATE/kube-1.20.2"
  local bin="$cache/bin"

  kube_ensure_binaries "$cache" || return 1
  if ! command -v etcd >/dev/null 2>&1; then
    kube_apt_install etcd-server || return 1
  fi
  if ! command -v openssl >/dev/null 2>&1; then
    kube_apt_install openssl || return 1
  fi

  rm -rf "$state"
  mkdir -p "$state/etcd-data" "$state/pki" "$state/kubectl-cache" || return 1
  chmod 700 "$state/etcd-data" "$state/pki"

  # A per-run CA and a serving certificate for 127.0.0.1 / localhost signed by it, and the
  # service-account signing key.
  local pki="$state/pki"
  (
    cd "$pki" &&
      openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
        -subj "/CN=hoist-test-ca" &&
      openssl req -newkey rsa:2048 -nodes -keyout serving.key -out serving.csr \
        -subj "/CN=kube-apiserver" &&
      printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
        >serving.ext &&
      openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
        -extfile serving.ext -out serving.crt &&
      openssl genrsa -out sa.key 2048
  ) >"$state/openssl.log" 2>&1 || {
    echo "kube: openssl failed:" >&2
    cat "$state/openssl.log" >&2
    return 1
  }

  local admin_token limited_token
  admin_token="$(openssl rand -hex 24)" && limited_token="$(openssl rand -hex 24)" || return 1
  printf '%s\n' "$admin_token,hoist-admin,hoist-admin,\"system:masters\"" \
    "$limited_token,hoist-limited,hoist-limited" >"$pki/tokens.csv"
  chmod 600 "$pki/tokens.csv"

  local etcd_port etcd_peer_port api_port
  etcd_port="$(kube_free_port)" && etcd_peer_port="$(kube_free_port)" && api_port="$(kube_free_port)" ||
    return 1
  local url="https://127.0.0.1:$api_port"
  kube_write_kubeconfig "$state/admin.kubeconfig" "$url" "$pki/ca.crt" hoist-admin "$admin_token"
  kube_write_kubeconfig "$state/limited.kubeconfig" "$url" "$pki/ca.crt" hoist-limited "$limited_token"
  local kubectl="$bin/kubectl" admin="$state/admin.kubeconfig"

  etcd --name hoist-test \
    --data-dir "$state/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "hoist-test=http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster-state new \
    --logger zap --log-outputs stderr \
    >"$state/etcd.log" 2>&1 &
  PIDS+=("$!")
  kube_wait 30 "$!" etcd "$state/etcd.log" kube_http_ok "$etcd_port" /health || return 1

  "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --secure-port "$api_port" --insecure-port 0 \
    --advertise-address 127.0.0.1 --endpoint-reconciler-type none \
    --tls-cert-file "$pki/serving.crt" --tls-private-key-file "$pki/serving.key" \
    --cert-dir "$state/apiserver-certs" \
    --token-auth-file "$pki/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-key-file "$pki/sa.key" \
    --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range 10.96.0.0/16 \
    --profiling=false \
    >"$state/kube-apiserver.log" 2>&1 &
  PIDS+=("$!")
  local api_pid="$!"
  kube_wait 90 "$api_pid" kube-apiserver "$state/kube-apiserver.log" \
    kube_api_ok "$kubectl" "$admin" "$state/kubectl-cache" /readyz || return 1
  kube_wait 30 "$api_pid" "kube-apiserver (namespace default, apps/v1)" "$state/kube-apiserver.log" \
    kube_api_ok "$kubectl" "$admin" "$state/kubectl-cache" /api/v1/namespaces/default || return 1
  kube_wait 30 "$api_pid" "kube-apiserver (apps/v1)" "$state/kube-apiserver.log" \
    kube_api_ok "$kubectl" "$admin" "$state/kubectl-cache" /apis/apps/v1 || return 1

  "$bin/kube-controller-manager" \
    --kubeconfig "$admin" \
    --controllers '*' \
    --leader-elect=false \
    --service-account-private-key-file "$pki/sa.key" \
    --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --bind-address 127.0.0.1 --secure-port 0 --port 0 \
    --profiling=false \
    >"$state/kube-controller-manager.log" 2>&1 &
  PIDS+=("$!")
  # The ServiceAccount admission plugin rejects Pods until their namespace's `default` service
  # account has a token: wait for the controller manager to make the one in `default`.
  kube_wait 60 "$!" "kube-controller-manager (token of serviceaccount default/default)" \
    "$state/kube-controller-manager.log" \
    kube_api_ok "$kubectl" "$admin" "$state/kubectl-cache" sa-token || return 1

  export HOIST_TEST_KUBE_URL="$url"
  export HOIST_TEST_KUBECONFIG="$admin"
  export HOIST_TEST_KUBECONFIG_LIMITED="$state/limited.kubeconfig"
  export HOIST_TEST_KUBECTL="$kubectl"
  echo "kube-apiserver 1.20.2 at $HOIST_TEST_KUBE_URL (etcd at 127.0.0.1:$etcd_port," \
    "controller manager running); kubeconfigs in $state"
}

kube_start
