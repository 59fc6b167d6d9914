#!/usr/bin/env bash
# Measures the agent's own cost at the default configuration, from /proc:
# CPU (% of one core) and resident memory after it has run for a while.
#
#   bash benches/agent_overhead.sh            # 10 minutes (the issue's figure)
#   DURATION=120 bash benches/agent_overhead.sh
#
# Builds the release binary, runs `hourglass run` with no config on a free
# port, and while it runs queries it once a minute like a dashboard would.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-600}
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}

cargo build --release --quiet
BIN=target/release/hourglass
HOURGLASS_LOG=warn "$BIN" run --listen "127.0.0.1:$PORT" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$PID/status"; }

# Let start-up (first scrapes, allocation of the store) settle before timing.
sleep 10
t0=$(date +%s.%N); c0=$(cpu_ticks)
elapsed=0
while [ "$elapsed" -lt "$DURATION" ]; do
  step=$(( DURATION - elapsed < 60 ? DURATION - elapsed : 60 ))
  sleep "$step"
  elapsed=$(( elapsed + step ))
  curl -fsS "127.0.0.1:$PORT/api/v1/query?query=sum%20by%20(mode)(rate(node_cpu_seconds_total%5B1m%5D))" >/dev/null
  printf 'after %4ss: rss %6s kB\n' "$elapsed" "$(rss_kb)"
done
t1=$(date +%s.%N); c1=$(cpu_ticks)
series=$(curl -fsS "127.0.0.1:$PORT/metrics" | awk '/^hourglass_store_series / {print $2}')
store_bytes=$(curl -fsS "127.0.0.1:$PORT/metrics" | awk '/^hourglass_store_bytes / {print $2}')
python3 - "$t0" "$t1" "$c0" "$c1" "$ticks" "$(rss_kb)" "$(hwm_kb)" "$series" "$store_bytes" <<'PY'
import sys
t0, t1, c0, c1, hz, rss, hwm, series, store = sys.argv[1:]
wall = float(t1) - float(t0)
cpu = (float(c1) - float(c0)) / float(hz)
print(f"wall {wall:.0f} s, agent cpu {cpu:.2f} s -> {100*cpu/wall:.3f} % of one core")
print(f"rss {int(rss)/1024:.1f} MB (peak {int(hwm)/1024:.1f} MB), {series} series, store {float(store)/1e6:.2f} MB")
PY
