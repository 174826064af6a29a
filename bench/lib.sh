# Functions shared by the bench scripts (sourced, not run). The caller sets LOG_PREFIX,
# SHARED_BENCH, BENCH, ROOT and TMP (its temp dir) first; build_tools sets LB and LOFT_EXE;
# start_loft sets LOFT_PID; start_dovecot sets DOVECOT_STARTED and DOVECOT_PID. A script
# calls `trap cleanup EXIT` once TMP exists; LOFT_LOG names the Loft log shown on failure.

log() { echo "${LOG_PREFIX:-bench}: $*" >&2; }

# port_open PORT: whether something listens on 127.0.0.1:PORT. ss looks without connecting,
# which keeps the servers' logs free of probe connections; /dev/tcp is the fallback.
port_open() {
	if command -v ss >/dev/null; then
		ss -Hltn "src 127.0.0.1 and sport = :$1" | grep -q .
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# free_port START: the first port from START on (at most 100 tried) that nothing listens on.
free_port() {
	local p
	for p in $(seq "$1" $(($1 + 99))); do
		if ! port_open "$p"; then echo "$p"; return 0; fi
	done
	log "no free port in $1..$(($1 + 99))"
	return 1
}

# wait_port PID PORT...: wait up to WAIT_PORT_SECONDS (default 10) for every PORT to listen
# while PID lives.
wait_port() {
	local pid=$1 p ok
	shift
	for _ in $(seq 1 $((${WAIT_PORT_SECONDS:-10} * 10))); do
		kill -0 "$pid" 2>/dev/null || { log "pid $pid exited at start"; return 1; }
		ok=1
		for p in "$@"; do port_open "$p" || ok=; done
		[ -n "$ok" ] && return 0
		sleep 0.1
	done
	log "pid $pid is not listening on port(s) $* after ${WAIT_PORT_SECONDS:-10} s"
	return 1
}

# start_loft CFG LOG PORT... [-- SERVE_ARGS...]: start `loft serve --config CFG` in the
# background from CFG's directory, its output appended to LOG, and wait for the ports (up to
# a minute: at start Loft sweeps its blob directory, a few seconds with 100,000 messages).
start_loft() {
	local cfg=$1 logf=$2 ports=() t0=$SECONDS
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do ports+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	(cd "$(dirname "$cfg")" && exec "$LOFT_EXE" serve --config "$cfg" "$@" >>"$logf" 2>&1) &
	LOFT_PID=$!
	WAIT_PORT_SECONDS=60 wait_port "$LOFT_PID" "${ports[@]}" || return 1
	log "loft started in $((SECONDS - t0)) s (pid $LOFT_PID${*:+, $*})"
}

# stop_loft: SIGTERM to LOFT_PID, SIGKILL after 10 s; waits, so a --cpuprofile is complete.
stop_loft() {
	[ -n "${LOFT_PID:-}" ] || return 0
	if kill -0 "$LOFT_PID" 2>/dev/null; then
		kill -TERM "$LOFT_PID"
		for _ in $(seq 1 100); do kill -0 "$LOFT_PID" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$LOFT_PID" 2>/dev/null; then
			log "loft (pid $LOFT_PID) still running 10 s after SIGTERM; killing it"
			kill -KILL "$LOFT_PID"
		fi
		wait "$LOFT_PID" 2>/dev/null
		log "loft stopped (pid $LOFT_PID)"
	fi
	LOFT_PID=
}

# dovecot_running: whether the benchmark Dovecot's master (of $BENCH) is alive.
dovecot_running() {
	local pidf=$BENCH/dovecot/run/master.pid
	[ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null
}

# median: the median of the numbers on stdin, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# cleanup: the EXIT trap. Stops Loft, and Dovecot if this script started it; on failure shows
# the end of $LOFT_LOG; removes $TMP unless KEEP_TMP=1. Exits with the script's status.
cleanup() {
	local rc=$?
	set +e
	stop_loft
	if [ -n "${DOVECOT_STARTED:-}" ]; then
		bash "$SHARED_BENCH/stop-dovecot.sh" >&2
	fi
	if [ "$rc" -ne 0 ] && [ -s "${LOFT_LOG:-}" ]; then
		log "failed; last lines of the Loft log:"
		tail -n 20 "$LOFT_LOG" >&2
	fi
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}

# need_root_and_dovecot: the checks every Dovecot comparison starts with.
need_root_and_dovecot() {
	[ "$(id -u)" = 0 ] || { log "needs root (setup-dovecot.sh installs and starts Dovecot)"; exit 1; }
	[ -x "$SHARED_BENCH/setup-dovecot.sh" ] || { log "no $SHARED_BENCH/setup-dovecot.sh; set SHARED_BENCH"; exit 1; }
}

# build_tools: loftbench into $TMP/loftbench (LB), and loft into $TMP/loft unless LOFT_BIN
# names one (LOFT_EXE). Building first means a compile error stops a run before any server
# starts.
build_tools() {
	(cd "$ROOT" && log "building loftbench" && go build -o "$TMP/loftbench" ./bench/loftbench)
	LB=$TMP/loftbench
	if [ -n "${LOFT_BIN:-}" ]; then
		LOFT_EXE=$(cd "$(dirname "$LOFT_BIN")" && pwd)/$(basename "$LOFT_BIN")
	else
		LOFT_EXE=$TMP/loft
		(cd "$ROOT" && log "building loft" && go build -o "$LOFT_EXE" ./cmd/loft)
	fi
}

# start_dovecot PORT...: the benchmark Dovecot (started if not running; one that was running
# is left running at the end), waiting up to 5 s for PORTs.
start_dovecot() {
	local p
	dovecot_running || DOVECOT_STARTED=1
	bash "$SHARED_BENCH/setup-dovecot.sh" >&2
	for _ in $(seq 1 50); do
		local ok=1
		for p in "$@"; do port_open "$p" || ok=; done
		[ -n "$ok" ] && break
		sleep 0.1
	done
	for p in "$@"; do port_open "$p" || { log "Dovecot is not listening on 127.0.0.1:$p"; exit 1; }; done
	DOVECOT_PID=$(cat "$BENCH/dovecot/run/master.pid")
}

# add_accounts CFG ADDRESS...: Loft accounts with password "pass".
add_accounts() {
	local cfg=$1 u
	shift
	for u in "$@"; do
		echo pass | "$LOFT_EXE" account add --config "$cfg" "$u" >/dev/null ||
			{ log "loft account add $u failed"; exit 1; }
	done
}

# cell RATE ERRORS: "123.4", or "123.4 (5 errors)".
cell() {
	awk -v r="$1" -v e="$2" 'BEGIN { printf "%.1f", r; if (e > 0) printf " (%d errors)", e }'
}

# ratio A B: A / B with two decimals, or "-" when B is 0.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}

# median: the median of the numbers on stdin.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# json_num FILE KEY: a top-level number of a loftbench JSON result.
json_num() { sed -n "s/^ *\"$2\": *\([0-9.eE+-]*\),*\$/\1/p" "$1"; }

# small_mbox N USER [FIRST [TAG]]: writes to stdout N small generated messages for USER (the
# large mailbox of imap.sh and imap-sync.sh): plain text, 0.4 to 1.5 KB, all different, numbered
# FIRST (default 1) on, with Message-ID <i.TAG@bench.test> (TAG default "small"). The same
# arguments always give the same bytes; a top-up passes its own FIRST and TAG, so that its
# Message-IDs are new.
small_mbox() {
	awk -v n="$1" -v user="$2" -v first="${3:-1}" -v tag="${4:-small}" 'BEGIN {
		srand(4)
		split("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron", w, " ")
		for (i = first; i < first + n; i++) {
			printf "From gen@bench.test Sun Nov 22 10:00:00 2026\n"
			printf "From: Sender %d <sender%d@example.org>\nTo: %s@bench.test\n", i % 97, i % 97, user
			printf "Subject: Small message %d about %s\n", i, w[1 + i % 12]
			printf "Date: Sun, 22 Nov 2026 %02d:%02d:%02d +0000\nMessage-ID: <%d.%s@bench.test>\n", int(i / 3600) % 24, int(i / 60) % 60, i % 60, i, tag
			printf "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"
			lines = 3 + int(rand() * 16)
			for (l = 0; l < lines; l++)
				printf "Line %d of message %d: %s %s %s, lorem ipsum dolor sit amet.\n", l, i, w[1 + int(rand() * 12)], w[1 + int(rand() * 12)], w[1 + int(rand() * 12)]
			printf "\n"
		}
	}'
}
