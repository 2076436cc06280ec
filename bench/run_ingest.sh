#!/usr/bin/env bash
# End-to-end ingest benchmark: PostgreSQL + Redis + separate `pulpit mailgw`, `pulpit worker`
# and `pulpit scheduler` processes, driven by bench/ingest.py with --database-url.
#
#   bench/run_ingest.sh [COUNT ...]          e.g. bench/run_ingest.sh 1000 3000
#
# Each COUNT is one bench/ingest.py run against the same instance (default: 1000). Settings
# through the environment: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres),
# REDIS_URL (redis://127.0.0.1:6379/14; that db is flushed), WORKER_PROCESSES (2),
# WORKER_THREADS (4 per process), WORKER_NICE (10, as deploy/systemd's Nice=),
# CONCURRENCY (8 SMTP connections), RATE (mails per second offered, open loop; default: as fast
# as the connections are answered), PYTHON (.venv/bin/python), KEEP_LOGS (a directory to copy
# the processes' logs to before the data dir is removed), GATEWAY_CPUS and WORKER_CPUS (CPU
# lists for taskset, e.g. 0 and 1: the gateway on a core of its own; default: no pinning),
# FROM_DIR (send the mails bench/ingest.py --write-dir wrote there instead of generating them;
# each COUNT then sends that directory's mails once).
#
# Creates the database pulpit_bench_ingest (dropped first), applies
# config/examples/demo.yaml, starts the three processes, runs the benchmark, prints the peak
# RSS and the CPU seconds used of the mail gateway and the worker (and, for the run, of
# PostgreSQL, Redis and the sending client), the machine's whole CPU (the kernel's threads
# too) and the disk's writes and cache flushes per mail, then stops the processes by PID and
# drops the database again.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
PULPIT=${PULPIT:-$ROOT/.venv/bin/pulpit}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
DB=pulpit_bench_ingest
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/14}
WORKER_PROCESSES=${WORKER_PROCESSES:-2}
WORKER_THREADS=${WORKER_THREADS:-4}
WORKER_NICE=${WORKER_NICE:-10}
CONCURRENCY=${CONCURRENCY:-8}
COUNTS=("$@")
[ ${#COUNTS[@]} -eq 0 ] && COUNTS=(1000)

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres "$@"; }
redis_flush() { "$PYTHON" -c 'import redis, sys; redis.Redis.from_url(sys.argv[1]).flushdb()' "$REDIS_URL"; }

DATA_DIR=$(mktemp -d -t pulpit-bench-ingest.XXXXXX)
SMTP_PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

export PULPIT_DATABASE_URL="postgresql+psycopg://$PGUSER@$PGHOST:$PGPORT/$DB"
export PULPIT_BROKER_URL="$REDIS_URL"
export PULPIT_DATA_DIR="$DATA_DIR"
export PULPIT_SMTP_HOST=127.0.0.1
export PULPIT_SMTP_PORT="$SMTP_PORT"
export PULPIT_OUTBOUND_SMTP_URL=null://

PIDS=()
NAMES=()
cleanup() {
    local i
    for i in "${!PIDS[@]}"; do
        kill -TERM "${PIDS[$i]}" 2>/dev/null || true
    done
    for i in "${!PIDS[@]}"; do
        # Give each up to 15 s to stop cleanly, then KILL that PID only.
        for _ in $(seq 150); do
            kill -0 "${PIDS[$i]}" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "${PIDS[$i]}" 2>/dev/null || true
        wait "${PIDS[$i]}" 2>/dev/null || true
    done
    if [ -n "${KEEP_LOGS:-}" ]; then
        mkdir -p "$KEEP_LOGS" && cp "$DATA_DIR"/*.log "$KEEP_LOGS"/ && echo "== logs kept in $KEEP_LOGS"
    fi
    psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
    redis_flush || true
    rm -rf "$DATA_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== database $DB, broker $REDIS_URL, data $DATA_DIR, SMTP port $SMTP_PORT"
psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
psql_admin -c "CREATE DATABASE $DB"
redis_flush
"$PULPIT" db upgrade
"$PULPIT" config apply config/examples/demo.yaml >/dev/null

start() {  # start NAME [cpus LIST] [nice -n N] ARGS...: a background pulpit process, logged to $DATA_DIR/NAME.log
    local name=$1; shift
    local prefix=()
    if [ "$1" = cpus ]; then
        [ -n "$2" ] && prefix=(taskset -c "$2")
        shift 2
    fi
    if [ "$1" = nice ]; then prefix+=(nice "$2" "$3"); shift 3; fi
    "${prefix[@]}" "$PULPIT" "$@" >"$DATA_DIR/$name.log" 2>&1 &
    PIDS+=($!)
    NAMES+=("$name")
    echo "== started pulpit $* (pid $!)"
}
start mailgw cpus "${GATEWAY_CPUS:-}" mailgw
start worker cpus "${WORKER_CPUS:-}" nice -n "$WORKER_NICE" worker --processes "$WORKER_PROCESSES" --threads "$WORKER_THREADS"
start scheduler cpus "${WORKER_CPUS:-}" scheduler

# Wait for the SMTP port (30 s).
for i in $(seq 300); do
    if "$PYTHON" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()' "$SMTP_PORT" 2>/dev/null; then
        break
    fi
    for pid in "${PIDS[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "a process exited early; logs:" >&2
            tail -n 30 "$DATA_DIR"/*.log >&2
            exit 1
        fi
    done
    [ "$i" -eq 300 ] && { echo "the SMTP port $SMTP_PORT did not open" >&2; tail -n 30 "$DATA_DIR"/*.log >&2; exit 1; }
    sleep 0.1
done

# Wait (60 s) until every worker process has started its threads: the children are spawned
# and import everything after the SMTP port opens, and a run that began before would charge
# their start (a second or more of CPU each) to the mails and have them compete for the cores.
for i in $(seq 600); do
    ready=$(grep -c "started [0-9]* worker thread" "$DATA_DIR/worker.log" || true)
    [ "$ready" -ge "$WORKER_PROCESSES" ] && break
    [ "$i" -eq 600 ] && echo "== the worker processes did not report ready in 60 s; going on" >&2
    sleep 0.1
done

peak_rss() {  # the kernel's high-water mark of resident memory (VmHWM), MiB
    awk '/^VmHWM:/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "-"
}
rss_now() { ps -o rss= -p "$1" | awk '{ printf "%.0f MiB", $1 / 1024 }'; }
cpu_seconds() {  # user + system CPU the process has used so far (/proc/PID/stat), seconds
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f s", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo "-"
}

service_ticks() {  # CPU ticks of every process named $1, with the children they reaped (a
    # PostgreSQL backend's CPU goes to the postmaster's when the connection closes)
    local pid total=0
    for pid in $(pgrep -x "$1" || true); do
        total=$((total + $(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
own_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
ticks_to_seconds() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f s", t / hz }'; }

machine_ticks() {  # CPU ticks this machine spent working: every process and the kernel's own
    # threads (the journal's commits and the disk's flushes are charged to none of the
    # processes above): user, nice, system, irq, softirq. Not idle, not I/O wait, and not
    # steal, the time the hypervisor gave to other machines.
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}
steal_ticks() { awk '/^cpu / { print $9 }' /proc/stat; }
# The block device holding the data directory (its blob files, fsynced one by one) and, on this
# kind of machine, PostgreSQL's WAL too; empty when /proc/diskstats does not list it.
DISK=$(basename "$(df --output=source "$DATA_DIR" 2>/dev/null | tail -n 1)")
disk_counts() {  # writes completed and cache flushes completed (/proc/diskstats, kernel 5.5+)
    awk -v d="$DISK" '$3 == d { print $8, ($19 == "" ? 0 : $19) }' /proc/diskstats
}

status=0
for count in "${COUNTS[@]}"; do
    echo "== bench/ingest.py --count $count --concurrency $CONCURRENCY"
    pg_before=$(service_ticks postgres)
    declare -A own_before=()
    for pid in "${PIDS[@]}" $(for p in "${PIDS[@]}"; do pgrep -P "$p" || true; done); do
        own_before[$pid]=$(own_ticks "$pid")
    done
    redis_before=$(service_ticks redis-server)
    machine_before=$(machine_ticks)
    steal_before=$(steal_ticks)
    read -r writes_before flushes_before <<<"$(disk_counts)" || true
    "$PYTHON" bench/ingest.py --port "$SMTP_PORT" --count "$count" --concurrency "$CONCURRENCY" \
        ${RATE:+--rate "$RATE"} ${FROM_DIR:+--from-dir "$FROM_DIR"} \
        --database-url "$PULPIT_DATABASE_URL" || status=$?
    # The CPU figures below include sending the run's outgoing mail: wait (up to 60 s) until
    # the outbox has nothing pending or being sent.
    for _ in $(seq 600); do
        left=$(psql -X -q -t -A -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d "$DB" \
            -c "SELECT count(*) FROM outbound_mail WHERE state IN ('pending', 'sending')")
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    echo "| outgoing mails sent (all runs so far) | $(psql -X -q -t -A -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d "$DB" -c "SELECT count(*) FROM outbound_mail WHERE state = 'sent'") |"
    # Every PostgreSQL and Redis process of the machine: run nothing else beside the bench.
    echo "| PostgreSQL CPU during the run (all its processes) | $(ticks_to_seconds $(( $(service_ticks postgres) - pg_before ))) |"
    echo "| Redis CPU during the run | $(ticks_to_seconds $(( $(service_ticks redis-server) - redis_before ))) |"
    echo "| the machine's CPU during the run (every process and the kernel) / stolen by the hypervisor | $(ticks_to_seconds $(( $(machine_ticks) - machine_before ))) / $(ticks_to_seconds $(( $(steal_ticks) - steal_before ))) |"
    read -r writes_after flushes_after <<<"$(disk_counts)" || true
    if [ -n "${writes_before:-}" ] && [ -n "${writes_after:-}" ]; then
        echo "| disk writes / cache flushes per mail ($DISK) | $(awk -v w=$((writes_after - writes_before)) -v f=$((flushes_after - flushes_before)) -v n="$count" 'BEGIN { printf "%.2f / %.2f", w / n, f / n }') |"
    fi
    for i in "${!PIDS[@]}"; do
        pid=${PIDS[$i]}
        echo "| ${NAMES[$i]} RSS now / peak, CPU in all / in this run (pid $pid) | $(rss_now "$pid") / $(peak_rss "$pid"), $(cpu_seconds "$pid") / $(ticks_to_seconds $(( $(own_ticks "$pid") - ${own_before[$pid]:-0} ))) |"
        for child in $(pgrep -P "$pid" || true); do
            echo "| ${NAMES[$i]} child RSS now / peak, CPU in all / in this run (pid $child) | $(rss_now "$child") / $(peak_rss "$child"), $(cpu_seconds "$child") / $(ticks_to_seconds $(( $(own_ticks "$child") - ${own_before[$child]:-0} ))) |"
        done
    done
done
if grep -q -E "Traceback|ERROR" "$DATA_DIR"/*.log; then
    echo "== errors in the process logs:" >&2
    grep -h -A3 -E "Traceback|ERROR" "$DATA_DIR"/*.log | head -n 40 >&2
fi
exit $status
