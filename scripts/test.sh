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
  cargo test --workspace --exclude hoist-integration-tests
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

step "build (once, every target)"
cargo build --workspace --all-targets

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "dependency rule: hoist-api stays small; providers and plugins depend on it alone"
# hoist-api (the provider SDK) has no cloud SDK, HTTP client, TLS, YAML, cron or JSON Schema crate.
if cargo tree -p hoist-api -e normal --prefix none \
  | grep -E '^(aws-|azure|google-cloud|kube|hyper|reqwest|rustls|openssl|native-tls|ring |tonic|serde-saphyr|serde_yaml|croner|cron |chrono-tz|schemars)'; then
  echo "hoist-api must not depend on the crates above" >&2
  exit 1
fi
# No provider or plugin crate depends on the engine, the simulator or the evaluation.
for crate in hoist-aws hoist-azure hoist-gcp hoist-kubernetes hoist-prometheus hoist-plugin hoist-plugin-static-pool; do
  if cargo tree -p "$crate" -e normal --prefix none | grep -E '^hoist-(core|engine|sim|eval) '; then
    echo "$crate must depend on hoist-api only, not on the crates above" >&2
    exit 1
  fi
done

step "tests"
cargo test --workspace --all-targets
cargo test --workspace --doc

# The parsers of everything Hoist reads from outside (policy files, traces, the plugin
# protocol), fuzzed on stable Rust from the corpus in fuzz/corpus for a bounded time each
# (fuzz/README.md). The seed is printed; a failure says how to replay it.
step "fuzz: ${HOIST_FUZZ_SECONDS:=30} s per target"
HOIST_FUZZ_SECONDS="$HOIST_FUZZ_SECONDS" cargo test -p hoist-fuzz --test fuzz
