# Functions shared by the bench scripts (sourced, not run). The caller sets LOG_PREFIX and,
# before calling start_loft or stop_loft, LOFT_EXE; start_loft sets LOFT_PID.
#
# lmtp.sh and pop3.sh predate this file and keep their own copies of port_open and of the
# Loft shutdown in their cleanup; imap.sh uses these.

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
