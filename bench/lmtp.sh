#!/bin/bash
# LMTP delivery, Dovecot vs Loft, side by side on this machine (loopback only).
#
# Starts the private benchmark Dovecot (shared/bench/setup-dovecot.sh: LMTP 127.0.0.1:11024,
# users bench1..bench1000) and a fresh Loft from a temp dir (LMTP 127.0.0.1:12424, accounts
# bench1..bench100@bench.test), then delivers the standard 2000-message set to 100 accounts with
# 1, 4 and 16 connections, alternating Dovecot and Loft, and prints a markdown table.
# Both servers are stopped at the end, also on failure or ^C. Needs root (for Dovecot), Go and
# python3 (to generate the message set).
#
# Environment:
#   SHARED_BENCH  shared/bench directory     (default: $(dirname "$0")/../../shared/bench)
#   BENCH         Dovecot state and mbox dir (default: /tmp/bench, as setup-dovecot.sh)
#   CONNS         connection counts to run   (default: "1 4 16")
#   SKIP_LOFT=1   measure Dovecot only (while cmd/loft does not build yet)
#   LOFT_BIN      use this loft binary instead of building ./cmd/loft
#   KEEP_TMP=1    keep the temp dir (Loft's data, config, log, JSON results)
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$HERE/../../shared/bench}
export BENCH=${BENCH:-/tmp/bench}
MBOX=$BENCH/data/bench.mbox
CONNS=${CONNS:-"1 4 16"}
SKIP_LOFT=${SKIP_LOFT:-0}

COUNT=2000           # the whole standard set, once per run
ACCOUNTS=100         # Loft gets exactly these; Dovecot has bench1..bench1000
DOMAIN=bench.test    # Dovecot strips the domain (auth_username_format = %Ln): benchN@bench.test is user benchN
DURATION=600s        # upper bound for one run; a run normally ends at COUNT
DOVECOT_LMTP=127.0.0.1:11024
LOFT_LMTP=127.0.0.1:12424

TMP=$(mktemp -d "${TMPDIR:-/tmp}/loft-lmtp-bench.XXXXXX")
LOFT_PID=
DOVECOT_STARTED=

log() { echo "lmtp.sh: $*" >&2; }

cleanup() {
	local rc=$?
	set +e
	if [ -n "$LOFT_PID" ] && kill -0 "$LOFT_PID" 2>/dev/null; then
		kill -TERM "$LOFT_PID"
		for _ in $(seq 1 100); do kill -0 "$LOFT_PID" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$LOFT_PID" 2>/dev/null; then
			log "loft (pid $LOFT_PID) still running 10 s after SIGTERM; killing it"
			kill -KILL "$LOFT_PID"
		fi
		wait "$LOFT_PID" 2>/dev/null
		log "loft stopped (pid $LOFT_PID)"
	fi
	if [ -n "$DOVECOT_STARTED" ]; then
		bash "$SHARED_BENCH/stop-dovecot.sh" >&2
	fi
	if [ "$rc" -ne 0 ] && [ -s "$TMP/loft.log" ]; then
		log "failed; last lines of the Loft log:"
		tail -n 20 "$TMP/loft.log" >&2
	fi
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# port_open PORT: whether something listens on 127.0.0.1:PORT. ss looks without connecting,
# which keeps the servers' logs free of probe connections; /dev/tcp is the fallback.
port_open() {
	if command -v ss >/dev/null; then
		ss -Hltn "src 127.0.0.1 and sport = :$1" | grep -q .
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

[ "$(id -u)" = 0 ] || { log "needs root (setup-dovecot.sh installs and starts Dovecot)"; exit 1; }
[ -x "$SHARED_BENCH/setup-dovecot.sh" ] || { log "no $SHARED_BENCH/setup-dovecot.sh; set SHARED_BENCH"; exit 1; }

# Build first, so that a compile error stops us before any server starts.
cd "$ROOT"
log "building loftbench"
go build -o "$TMP/loftbench" ./bench/loftbench
LOFT_EXE=$TMP/loft
if [ "$SKIP_LOFT" = 1 ]; then
	:
elif [ -n "${LOFT_BIN:-}" ]; then
	LOFT_EXE=$(cd "$(dirname "$LOFT_BIN")" && pwd)/$(basename "$LOFT_BIN")
else
	log "building loft"
	go build -o "$LOFT_EXE" ./cmd/loft
fi

# (a) Dovecot.
DOVECOT_STARTED=1
bash "$SHARED_BENCH/setup-dovecot.sh" >&2
for _ in $(seq 1 50); do port_open 11024 && break; sleep 0.1; done
port_open 11024 || { log "Dovecot LMTP is not listening on $DOVECOT_LMTP"; exit 1; }

# (b) Loft, from a temp dir with its own data.
if [ "$SKIP_LOFT" != 1 ]; then
	if port_open 12424; then log "something already listens on $LOFT_LMTP"; exit 1; fi
	CFG=$TMP/loft.toml
	cat >"$CFG" <<-EOF
		hostname = "localhost"
		domains  = ["$DOMAIN"]
		data_dir = "$TMP/data"

		[listen]
		smtp  = ""
		lmtp  = "$LOFT_LMTP"
		imap  = ""
		imaps = ""
		pop3  = ""
		pop3s = ""
	EOF
	cd "$TMP"
	log "creating bench1..bench$ACCOUNTS@$DOMAIN in Loft"
	for i in $(seq 1 "$ACCOUNTS"); do
		echo pass | "$LOFT_EXE" account add --config "$CFG" "bench$i@$DOMAIN" >/dev/null ||
			{ log "loft account add bench$i@$DOMAIN failed"; exit 1; }
	done
	"$LOFT_EXE" serve --config "$CFG" >"$TMP/loft.log" 2>&1 &
	LOFT_PID=$!
	for _ in $(seq 1 100); do
		kill -0 "$LOFT_PID" 2>/dev/null || { log "loft serve exited at start"; exit 1; }
		port_open 12424 && break
		sleep 0.1
	done
	port_open 12424 || { log "loft serve is not listening on $LOFT_LMTP after 10 s"; exit 1; }
	log "loft started (pid $LOFT_PID)"
	cd "$ROOT"
fi

# bench NAME ADDR CONNS: one run; prints "msgs/s errors" and keeps the JSON in $TMP.
bench() {
	local out=$TMP/$1-$3.json rc=0
	"$TMP/loftbench" lmtp --addr "$2" --mbox "$MBOX" --conns "$3" --accounts "$ACCOUNTS" \
		--domain "$DOMAIN" --user-format 'bench%d' --count "$COUNT" --duration "$DURATION" \
		--json >"$out" || rc=$?
	# 1 means some transactions failed: reported, the run still counts. 2 means no run at all.
	[ "$rc" -le 1 ] || { log "loftbench against $1 failed to run (status $rc)"; return 1; }
	local rate errs p50 p99
	rate=$(sed -n 's/^ *"msgs_per_sec": *\([0-9.eE+-]*\),*$/\1/p' "$out")
	errs=$(sed -n 's/^ *"errors": *\([0-9]*\),*$/\1/p' "$out")
	p50=$(sed -n 's/^ *"p50_ms": *\([0-9.eE+-]*\),*$/\1/p' "$out")
	p99=$(sed -n 's/^ *"p99_ms": *\([0-9.eE+-]*\),*$/\1/p' "$out")
	log "$(printf '%-8s %2s conns: %7.1f msgs/s, p50 %.1f ms, p99 %.1f ms, %s errors' "$1" "$3" "$rate" "$p50" "$p99" "$errs")"
	echo "$rate $errs"
}

# (c) Alternate the two servers at each connection count, so that drift hits both alike.
declare -A DOV_RES LOFT_RES
for c in $CONNS; do
	DOV_RES[$c]=$(bench dovecot "$DOVECOT_LMTP" "$c")
	if [ "$SKIP_LOFT" != 1 ]; then
		LOFT_RES[$c]=$(bench loft "$LOFT_LMTP" "$c")
	fi
done

# (d) The table: msgs/s, and Loft's rate as a multiple of Dovecot's.
cell() { # "rate errors" -> "123.4" or "123.4 (5 errors)"
	awk -v r="$1" -v e="$2" 'BEGIN { printf "%.1f", r; if (e > 0) printf " (%d errors)", e }'
}
echo
echo "LMTP delivery of $(basename "$MBOX") ($COUNT messages to $ACCOUNTS accounts), $(nproc) CPUs, $(date -u +%Y-%m-%d)"
echo
echo "| conns | Dovecot msgs/s | Loft msgs/s | Loft/Dovecot |"
echo "|---:|---:|---:|---:|"
for c in $CONNS; do
	read -r drate derr <<<"${DOV_RES[$c]}"
	if [ "$SKIP_LOFT" = 1 ]; then
		echo "| $c | $(cell "$drate" "$derr") | - | - |"
	else
		read -r lrate lerr <<<"${LOFT_RES[$c]}"
		ratio=$(awk -v l="$lrate" -v d="$drate" 'BEGIN { if (d > 0) printf "%.2f", l / d; else print "-" }')
		echo "| $c | $(cell "$drate" "$derr") | $(cell "$lrate" "$lerr") | $ratio |"
	fi
done
# (e) cleanup (trap) stops both servers.
