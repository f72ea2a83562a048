#!/bin/sh
# talk_chain.sh - messages/s of the shipped plugin chain, next to the same chain plus the talk's
# plugins (check_earlytalker wait=0, check_basicheaders, queue_sql on SQLite), in one run.
#
# Usage: bench/talk_chain.sh [MESSAGES [SESSIONS [SIZE [ROUNDS]]]]   (defaults 3000 20 2048 3)
# Environment: PORTER_BENCH_WORKERS (default 1), PORTER_BENCH_TIMEOUT seconds per run (120).
# Needs a built tree (./porter, native-plugins/*.so) and Postfix's smtp-source. Each chain gets
# its own porter on a free loopback port and its own directory; smtp-source sends MESSAGES
# messages of SIZE body bytes over SESSIONS parallel sessions, one message per connection (so
# every message also pays for the connect hook). A chain passes only when every message got a
# 2xx (smtp-source aborts otherwise) and every message was stored. The chains take turns for
# ROUNDS rounds (so drift in the machine hits all of them alike); each chain's figure is its
# median. Prints one line per run, one per chain and the ratios; porter processes it started
# are stopped by PID.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
messages=${1:-3000}
sessions=${2:-20}
size=${3:-2048}
rounds=${4:-3}
workers=${PORTER_BENCH_WORKERS:-1}
limit=${PORTER_BENCH_TIMEOUT:-120}
source_bin=$(command -v smtp-source || echo /usr/sbin/smtp-source)
[ -x "$top/porter" ] || { echo "talk_chain: build porter first (make)" >&2; exit 1; }
[ -x "$source_bin" ] || { echo "talk_chain: smtp-source (postfix) is not installed" >&2; exit 1; }
for plugin in rcpt_ok queue_maildir check_earlytalker check_basicheaders queue_sql; do
    [ -f "$top/native-plugins/$plugin.so" ] || { echo "talk_chain: build native-plugins/$plugin.so" >&2; exit 1; }
done

work=$(mktemp -d /tmp/porter-bench-XXXXXX)
master=""
stop_porter() {
    [ -n "$master" ] || return 0
    children=$(ps -o pid= --ppid "$master" 2>/dev/null || true)
    kill -TERM "$master" 2>/dev/null || true
    waited=0
    while kill -0 "$master" 2>/dev/null && [ "$waited" -lt 100 ]; do sleep 0.1; waited=$((waited + 1)); done
    # shellcheck disable=SC2086
    kill -KILL "$master" $children 2>/dev/null || true
    wait "$master" 2>/dev/null || true
    master=""
}
trap 'stop_porter; rm -rf "$work"' EXIT INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# run_chain NAME PLUGINS COUNT_COMMAND - messages/s of one chain (printed), stored count checked
run_chain() {
    name=$1
    dir="$work/$name"
    mkdir -p "$dir"
    port=$(free_port)
    cat > "$dir/porter.conf" <<EOF
hostname = bench.porter.test
listen = 127.0.0.1:$port smtp
workers = $workers
plugin_dir = $top/native-plugins
spool_dir = $dir/spool
log_level = warning
max_connections_per_ip = 1000
EOF
    printf '%b' "$2" > "$dir/plugins"
    echo "example.com" > "$dir/rcpthosts"
    : > "$dir/relayclients"
    "$top/porter" run -f -c "$dir" > "$dir/porter.log" 2>&1 &
    master=$!
    tries=0
    until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || { echo "talk_chain: porter did not start:" >&2; cat "$dir/porter.log" >&2; exit 1; }
        sleep 0.1
    done
    start=$(date +%s.%N)
    if ! timeout "$limit" "$source_bin" -s "$sessions" -m "$messages" -l "$size" -M bench.example \
            -f sender@bench.example -t rcpt@example.com "127.0.0.1:$port" > "$dir/source.log" 2>&1; then
        echo "talk_chain: $name: smtp-source failed or took more than ${limit}s:" >&2
        tail -5 "$dir/source.log" >&2
        tail -5 "$dir/porter.log" >&2
        exit 1
    fi
    end=$(date +%s.%N)
    stop_porter
    stored=$(eval "$3")
    if [ "$stored" != "$messages" ]; then
        echo "talk_chain: $name: $stored of $messages messages stored" >&2
        exit 1
    fi
    rate=$(echo "$start $end $messages" | awk '{ printf "%.1f", $3 / ($2 - $1) }')
    printf '  round %d  %-44s %8s msg/s\n' "$round" "$name" "$rate"
    eval "rates_$4=\"\${rates_$4:-} $rate\""
    rm -rf "$dir"
}

median() { echo "$@" | tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

shipped='rcpt_ok rcpthosts=rcpthosts\nqueue_maildir path=maildir\n'
talk='check_earlytalker wait=0\nrcpt_ok rcpthosts=rcpthosts\ncheck_basicheaders\nqueue_sql db=sqlite:mail.sqlite\nqueue_maildir path=maildir\n'
checks='check_earlytalker wait=0\nrcpt_ok rcpthosts=rcpthosts\ncheck_basicheaders\nqueue_maildir path=maildir\n'

count_maildir='ls "$dir/maildir/new" | wc -l | tr -d " "'
count_sql='python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from mails\").fetchone()[0])" "$dir/mail.sqlite"'
echo "talk_chain: $messages messages of $size body bytes, $sessions sessions, $workers worker(s), $rounds rounds"
round=1
while [ "$round" -le "$rounds" ]; do
    run_chain shipped "$shipped" "$count_maildir" shipped
    run_chain shipped+earlytalker+basicheaders "$checks" "$count_maildir" checks
    run_chain shipped+earlytalker+basicheaders+queue_sql "$talk" "$count_sql" talk
    round=$((round + 1))
done
shipped_rate=$(median $rates_shipped)
checks_rate=$(median $rates_checks)
talk_rate=$(median $rates_talk)
printf '%-52s %8s msg/s (median)\n' "shipped chain (rcpt_ok, queue_maildir)" "$shipped_rate"
printf '%-52s %8s msg/s (median)\n' "+ check_earlytalker wait=0, check_basicheaders" "$checks_rate"
printf '%-52s %8s msg/s (median)\n' "+ those and queue_sql (SQLite) as the queue" "$talk_rate"
echo "$shipped_rate $checks_rate $talk_rate" | awk '{
    printf "ratio talk chain / shipped chain: %.2f\n", $3 / $1
    printf "ratio shipped + earlytalker + basicheaders / shipped chain: %.2f\n", $2 / $1 }'
