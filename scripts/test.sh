#!/usr/bin/env bash
# Runs every test Hoist has, on a fresh machine: installs and starts the real test servers once
# (each `scripts/servers/*.sh` installs one and exports its address), then checks formatting,
# lints, docs and runs the whole test suite. Servers are stopped when the script exits.
#
#   scripts/test.sh            everything
#   scripts/test.sh --quick    unit tests only: no servers, no lints
# HOIST_FUZZ_SECONDS (default 30) bounds each fuzz target's run.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hoist-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export HOIST_TEST_STATE="${HOIST_TEST_STATE:-$HOME/.cache/hoist-test-servers}"
mkdir -p "$CARGO_TARGET_DIR" "$HOIST_TEST_STATE"

step() { printf '\n==> %s\n' "$*"; }

if [[ "${1:-}" == "--quick" ]]; then
  step "unit tests"
  cargo test --workspace --exclude hoist-integration-tests --exclude hoist-etcd
  exit 0
fi

PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

# Each server script defines nothing global but what it exports, appends its pids to PIDS and
# fails loudly when it cannot install or start its server.
for server in scripts/servers/*.sh; do
  [[ -e "$server" ]] || continue
  step "test server: $(basename "$server" .sh)"
  # shellcheck source=/dev/null
  source "$server"
done

step "cargo fmt --check"
cargo fmt --all -- --check

# The `hoist` binary with every optional provider and backend (etcd leader election needs
# protoc, which scripts/servers/etcd.sh installs); every cargo command below uses the same
# features, so nothing is built twice.
FEATURES=(--features hoist/etcd)

step "build (once, every target)"
cargo build --workspace --all-targets "${FEATURES[@]}"

step "cargo clippy"
cargo clippy --workspace --all-targets "${FEATURES[@]}" -- -D warnings

step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps "${FEATURES[@]}"

step "dependency rule: hoist-api stays small; providers and plugins depend on it alone"
# hoist-api (the provider SDK) has no cloud SDK, HTTP client, TLS, YAML, cron or JSON Schema crate.
if cargo tree -p hoist-api -e normal --prefix none \
  | grep -E '^(aws-|azure|google-cloud|kube|hyper|reqwest|rustls|openssl|native-tls|ring |tonic|serde-saphyr|serde_yaml|croner|cron |chrono-tz|schemars)'; then
  echo "hoist-api must not depend on the crates above" >&2
  exit 1
fi
# No provider or plugin crate depends on the engine, the simulator or the evaluation.
for crate in hoist-aws hoist-azure hoist-gcp hoist-kubernetes hoist-prometheus hoist-etcd hoist-plugin hoist-plugin-static-pool; do
  if cargo tree -p "$crate" -e normal --prefix none | grep -E '^hoist-(core|engine|sim|eval) '; then
    echo "$crate must depend on hoist-api only, not on the crates above" >&2
    exit 1
  fi
done

step "supply chain: cargo deny (licences, bans, sources, advisories) and cargo audit"
# Both tools are installed from crates.io once, into a directory outside the clone.
TOOLS="${HOIST_TOOLS_DIR:-$HOME/.cache/hoist-tools}"
export PATH="$TOOLS/bin:$PATH"
command -v cargo-deny >/dev/null 2>&1 ||
  CARGO_TARGET_DIR="$TOOLS/target" cargo install cargo-deny --locked --root "$TOOLS"
cargo deny check --hide-inclusion-graph bans licenses sources
# Advisories need the RustSec database from github.com. Where it cannot be fetched they are
# reported as not checked (loudly); HOIST_REQUIRE_ADVISORIES=1 makes that a failure.
if timeout 20 git ls-remote https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
  # cargo-audit reads the same database: installed only where it can be fetched.
  command -v cargo-audit >/dev/null 2>&1 ||
    CARGO_TARGET_DIR="$TOOLS/target" cargo install cargo-audit --locked --root "$TOOLS"
  cargo deny check advisories
  cargo audit --deny warnings
elif [[ "${HOIST_REQUIRE_ADVISORIES:-0}" == 1 ]]; then
  echo "the RustSec advisory database cannot be fetched from github.com" >&2
  exit 1
else
  echo "WARNING: advisories NOT checked: the RustSec advisory database cannot be fetched from github.com here (set HOIST_REQUIRE_ADVISORIES=1 to fail instead)" >&2
fi

step "tests"
cargo test --workspace --all-targets "${FEATURES[@]}"
cargo test --workspace --doc "${FEATURES[@]}"

# The parsers of everything Hoist reads from outside (policy files, traces, the plugin
# protocol), fuzzed on stable Rust from the corpus in fuzz/corpus for a bounded time each
# (fuzz/README.md). The seed is printed; a failure says how to replay it.
step "fuzz: ${HOIST_FUZZ_SECONDS:=30} s per target"
HOIST_FUZZ_SECONDS="$HOIST_FUZZ_SECONDS" cargo test -p hoist-fuzz --test fuzz
