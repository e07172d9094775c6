#!/usr/bin/env bash
# Usage: scripts/bench/ai-instructions.sh BIN_DIR OUT_DIR [CALLS]
# What the AI gateway adds, in instructions rather than time (which a shared machine makes noisy): the
# release barrackd of BIN_DIR runs as an upstream and as a gateway in front of it, both under callgrind at
# the default log level. Counters are zeroed after a warm-up, then CALLS chat calls (8 clients) go to the
# upstream directly and CALLS through the gateway; the added cost is (gateway + upstream proxied) - upstream
# direct, per call. User-space instructions only: the kernel's share (sockets) is not counted. Needs
# valgrind, curl and python3; a few minutes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$1; OUT=$2; CALLS=${3:-400}
rm -rf "$OUT"; mkdir -p "$OUT"
LIMITS='[rate_limit]
requests = 0
window_seconds = 60

[ai]
requests_per_minute = 0
tokens_per_minute = 0
upstream_timeout_seconds = 600
'
model() { cat <<M

[[ai.models]]
id = "$1"
description = "bench"
backend = "sim"
context_length = 8192
max_output_tokens = 2048
first_token_ms = 0
tokens_per_second = 0
prices.input = { USD = 0.10, EUR = 0.09, INR = 8 }
prices.output = { USD = 0.30, EUR = 0.28, INR = 25 }
M
}
start() { # name config → pid, url, key in files
  local name=$1
  mkdir -p "$OUT/$name"
  printf '%s' "$2" > "$OUT/$name/bench.toml"
  BARRACK_SECRET=benchmark-secret-long-enough-for-hmac valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.cg.%p" \
    "$BIN/barrackd" serve --listen 127.0.0.1:0 --data-dir "$OUT/$name" --config "$OUT/$name/bench.toml" \
    > "$OUT/$name.out" 2> "$OUT/$name.err" &
  echo $! > "$OUT/$name.pid"
  for _ in $(seq 600); do grep -q "listening on" "$OUT/$name.out" 2>/dev/null && break; sleep 0.5; done
  sed -n 's#Barrack API listening on \(.*\)/api/#\1#p' "$OUT/$name.out" > "$OUT/$name.url"
  grep -o 'sk_[A-Za-z0-9]*' "$OUT/$name.out" | head -1 > "$OUT/$name.key"
}
fund() {
  local url key id
  url=$(cat "$OUT/$1.url"); key=$(cat "$OUT/$1.key")
  id=$(curl -s -H "X-API-Key: $key" "$url/api/account/profile/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
  curl -s -o /dev/null -H "X-API-Key: $key" -H 'Content-Type: application/json' \
    -d '{"amount": "1000000", "currency": "USD"}' "$url/api/admin/accounts/$id/credits/"
}
start upstream "$LIMITS$(model sim-instant)"
echo -n "$(cat "$OUT/upstream.key")" > "$OUT/upstream-key"
start gateway "$LIMITS$(model sim-instant)
[[ai.models]]
id = \"proxied\"
description = \"bench\"
backend = \"openai\"
base_url = \"$(cat "$OUT/upstream.url")/v1\"
api_key_file = \"$OUT/upstream-key\"
upstream_model = \"sim-instant\"
context_length = 8192
max_output_tokens = 2048
prices.input = { USD = 0.10, EUR = 0.09, INR = 8 }
prices.output = { USD = 0.30, EUR = 0.28, INR = 25 }
"
fund upstream; fund gateway
U=$(cat "$OUT/upstream.url"); UK=$(cat "$OUT/upstream.key"); G=$(cat "$OUT/gateway.url"); GK=$(cat "$OUT/gateway.key")
UP=$(cat "$OUT/upstream.pid"); GP=$(cat "$OUT/gateway.pid")
total() { # pid → instructions since the last zeroing
  rm -f "$OUT"/*.cg.$1.*
  callgrind_control -d "$1" > /dev/null
  sleep 1
  local f; f=$(ls -t "$OUT"/*.cg.$1.* | head -1)
  grep -E '^(summary|totals):' "$f" | head -1 | awk '{print $2}'
}
python3 "$HERE/ai_calls.py" "$U" "$UK" sim-instant 40 1
python3 "$HERE/ai_calls.py" "$G" "$GK" proxied 40 1
callgrind_control -z "$UP" > /dev/null; callgrind_control -z "$GP" > /dev/null
python3 "$HERE/ai_calls.py" "$U" "$UK" sim-instant "$CALLS" 8
UD=$(total "$UP"); GI=$(total "$GP")
callgrind_control -z "$UP" > /dev/null; callgrind_control -z "$GP" > /dev/null
python3 "$HERE/ai_calls.py" "$G" "$GK" proxied "$CALLS" 8
UPX=$(total "$UP"); GX=$(total "$GP")
kill "$UP" "$GP"; wait || true
echo "direct: upstream $((UD / CALLS)) instructions/call (gateway idle: $((GI / CALLS)))"
echo "proxied: gateway $((GX / CALLS)) + upstream $((UPX / CALLS)) instructions/call"
echo "added: $(((GX + UPX - UD - GI) / CALLS)) instructions/call"
