#!/usr/bin/env bash
# Drive real Dataverse clients from the package registries against the sandbox's Dataverse
# emulator over plain http: npm `dynamics-web-api` (v2) and PyPI `dataverse-api`.
#
# Starts the sandbox itself (the `dataverse_sandbox` example, or the command in
# $DATAVERSE_SANDBOX_CMD, which must print KEY=value lines and READY), installs each client into
# a temporary directory, runs its script, and fails on any error. A client whose registry cannot
# be reached is skipped with a message (exit 0), unless CONFORMANCE_REQUIRED=1.
#
# Usage: tests/conformance/dataverse/run.sh [npm|pip|all]   (default all)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
which="${1:-all}"
work="$(mktemp -d)"
sandbox_pid=""
cleanup() {
  exec 3>&- 2>/dev/null || true
  if [[ -n "$sandbox_pid" ]]; then kill "$sandbox_pid" 2>/dev/null || true; wait "$sandbox_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

skip() {
  if [[ "${CONFORMANCE_REQUIRED:-0}" == 1 ]]; then echo "conformance: $1 (required)" >&2; exit 1; fi
  echo "conformance: skipped: $1" >&2
}

# 1. The sandbox.
mkfifo "$work/stdin"
exec 3<>"$work/stdin"
if [[ -n "${DATAVERSE_SANDBOX_CMD:-}" ]]; then
  # shellcheck disable=SC2086
  $DATAVERSE_SANDBOX_CMD "$here/seed.json" <"$work/stdin" >"$work/env" 2>"$work/sandbox.log" &
else
  (cd "$root" && cargo build --quiet --example dataverse_sandbox)
  target="${CARGO_TARGET_DIR:-$root/target}"
  "$target/debug/examples/dataverse_sandbox" "$here/seed.json" <"$work/stdin" >"$work/env" 2>"$work/sandbox.log" &
fi
sandbox_pid=$!
for _ in $(seq 1 600); do
  grep -q '^READY$' "$work/env" 2>/dev/null && break
  kill -0 "$sandbox_pid" 2>/dev/null || { cat "$work/sandbox.log" >&2; echo "conformance: the sandbox exited" >&2; exit 1; }
  sleep 0.1
done
grep -q '^READY$' "$work/env" || { echo "conformance: the sandbox did not start within 60 s" >&2; exit 1; }
set -a
# shellcheck disable=SC1090
source <(grep -E '^(DATAVERSE_[A-Z_]+|SANDBOX_URL)=' "$work/env")
set +a
export DV_LIST_ID="7c9e6679-7425-40de-944b-e07fc1f90ae7"
echo "conformance: sandbox at $DATAVERSE_URL"

# 2. npm dynamics-web-api.
if [[ "$which" == all || "$which" == npm ]]; then
  if command -v npm >/dev/null && command -v node >/dev/null \
     && (cd "$work" && mkdir -p npm && cd npm && npm init -y >/dev/null \
         && timeout 180 npm install --no-audit --no-fund --silent dynamics-web-api@2 >/dev/null 2>&1); then
    NODE_PATH="$work/npm/node_modules" node "$here/dynamics-web-api.cjs"
  else
    skip "npm registry or node not reachable for dynamics-web-api"
  fi
fi

# 3. PyPI dataverse-api.
if [[ "$which" == all || "$which" == pip ]]; then
  if command -v python3 >/dev/null && python3 -m venv "$work/venv" >/dev/null 2>&1 \
     && timeout 300 "$work/venv/bin/pip" install --quiet "dataverse-api>=1.4,<2" >/dev/null 2>&1; then
    "$work/venv/bin/python" "$here/pypi_dataverse_api.py"
  else
    skip "PyPI or python3 venv not reachable for dataverse-api"
  fi
fi
echo "conformance: done"
