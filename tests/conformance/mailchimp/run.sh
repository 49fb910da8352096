#!/usr/bin/env bash
# Conformance of the Mailchimp emulator and client with Mailchimp's official OpenAPI spec.
#
# Installs Stoplight Prism 5 into a temporary directory, starts `audience-sync sandbox`, puts
# `prism proxy --errors` in front of it, drives our client (`audience-sync audiences` and the
# member reader of examples/bench_mailchimp_read.rs) and every emulated endpoint (drive.mjs)
# through the proxy, and fails on any violation: an `sl-violations` header, a 422 from Prism (a
# request the spec does not allow), a 500 from Prism (a response the spec does not allow), or a
# violation in Prism's log.
#
# usage: tests/conformance/mailchimp/run.sh [SPEC]   (default ../shared/specs/mailchimp-marketing.json)
# Needs: node + npm (with access to the npm registry), curl, cargo.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
spec="$(realpath "${1:-$root/../shared/specs/mailchimp-marketing.json}")"
if [ ! -f "$spec" ]; then
  echo "conformance: no spec at $spec" >&2
  exit 2
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what="$2"
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "conformance: timed out waiting for $what" >&2
      return 1
    fi
    sleep 0.2
  done
}

echo "conformance: installing @stoplight/prism-cli@5"
(cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error @stoplight/prism-cli@5 >/dev/null)
prism="$work/node_modules/.bin/prism"
"$prism" --version

echo "conformance: building"
cd "$root"
cargo build --quiet --bin audience-sync --example bench_mailchimp_read
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$target/debug/audience-sync"
bench="$target/debug/examples/bench_mailchimp_read"

"$bin" sandbox --seed "$here/seed.yaml" >"$work/env" 2>"$work/sandbox.log" &
pids+=($!)
wait_for 30 "the sandbox" grep -q '^MAILCHIMP_API_KEY=' "$work/env"
upstream="$(sed -n 's/^MAILCHIMP_BASE_URL=//p' "$work/env")"
key="$(sed -n 's/^MAILCHIMP_API_KEY=//p' "$work/env")"

port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
proxy="http://127.0.0.1:$port"
"$prism" proxy --host 127.0.0.1 --port "$port" --errors "$spec" "$upstream" >"$work/prism.log" 2>&1 &
pids+=($!)
wait_for 90 "Prism" curl -sf -u "conformance:$key" "$proxy/ping"
echo "conformance: Prism proxy on $proxy in front of $upstream"

status=0
echo "conformance: our client"
MAILCHIMP_BASE_URL="$proxy" MAILCHIMP_API_KEY="$key" "$bin" audiences || status=1
ids="$(MAILCHIMP_BASE_URL="$proxy" MAILCHIMP_API_KEY="$key" "$bin" audiences --format json |
  node -e 'let t="";process.stdin.on("data",d=>t+=d).on("end",()=>console.log(JSON.parse(t).map(a=>a.id).join(" ")))')" || status=1
for id in $ids; do
  "$bench" --base-url "$proxy" --api-key "$key" --list "$id" || status=1
done

echo "conformance: every endpoint"
node "$here/drive.mjs" "$proxy" "$key" c0ffee0001 || status=1

if grep -Eiq 'violation|✖' "$work/prism.log"; then
  echo "conformance: Prism reported violations:" >&2
  grep -Ei -A3 'violation|✖' "$work/prism.log" | head -100 >&2
  status=1
fi
# Control, after the log is checked: Prism must really be validating, or every "ok" above
# proves nothing. A count above the spec's maximum of 1000 must be refused by Prism with 422.
control="$(curl -s -o /dev/null -w '%{http_code}' -u "conformance:$key" "$proxy/lists/c0ffee0001/members?count=5000")"
if [ "$control" = "422" ]; then
  echo "conformance: control ok (Prism refuses count=5000 with 422, so it validates)"
else
  echo "conformance: control FAILED: Prism answered $control to count=5000 instead of 422" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "conformance: FAILED" >&2
  exit 1
fi
echo "conformance: zero violations"
