#!/bin/bash
# POP3 download, Dovecot vs Loft, side by side on this machine (loopback only).
#
# Starts the private benchmark Dovecot (shared/bench/setup-dovecot.sh: POP3 127.0.0.1:11110,
# LMTP 11024, users bench1..bench1000) and a fresh Loft from a temp dir (POP3 127.0.0.1:12110,
# LMTP 12524). Accounts bench901..bench904 on both (Dovecot's emptied first) each receive the
# standard message set once (loftbench fill: one LMTP transaction per message, all four
# recipients). Then, for 1 and 4 parallel sessions on different accounts, loftbench pop3 logs
# in, lists UIDL, RETRs every message and QUITs (deleting nothing), alternating Dovecot and
# Loft, ROUNDS times each; the median MB/s is reported as a markdown table.
# Both servers are stopped at the end, also on failure or ^C. Needs root (for Dovecot), Go and
# python3 (to generate the message set).
#
# Environment:
#   SHARED_BENCH  shared/bench directory     (default: $(dirname "$0")/../../shared/bench)
#   BENCH         Dovecot state and mbox dir (default: /tmp/bench, as setup-dovecot.sh)
#   CONNS         session counts to run      (default: "1 4")
#   ROUNDS        runs per server and count  (default: 5; the median is reported)
#   PIPELINE      RETRs in flight per session (default: 1, as most clients)
#   LOFT_BIN      use this loft binary instead of building ./cmd/loft
#   KEEP_TMP=1    keep the temp dir (Loft's data, config, log, JSON results)
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$HERE/../../shared/bench}
export BENCH=${BENCH:-/tmp/bench}
MBOX=$BENCH/data/bench.mbox
CONNS=${CONNS:-"1 4"}
ROUNDS=${ROUNDS:-5}
PIPELINE=${PIPELINE:-1}

DOMAIN=bench.test  # Dovecot strips the domain (auth_username_format = %Ln) from logins and RCPT
FIRST=901          # accounts bench901..bench904: apart from lmtp.sh's bench1..bench100
MAXCONNS=4
DOVECOT_CONF=$BENCH/dovecot/dovecot.conf
DOVECOT_POP3=127.0.0.1:11110
DOVECOT_LMTP=127.0.0.1:11024
LOFT_POP3=127.0.0.1:12110
LOFT_LMTP=127.0.0.1:12524

TMP=$(mktemp -d "${TMPDIR:-/tmp}/loft-pop3-bench.XXXXXX")
LOFT_PID=
DOVECOT_STARTED=

log() { echo "pop3.sh: $*" >&2; }

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

# port_open PORT: whether something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

[ "$(id -u)" = 0 ] || { log "needs root (setup-dovecot.sh installs and starts Dovecot)"; exit 1; }
[ -x "$SHARED_BENCH/setup-dovecot.sh" ] || { log "no $SHARED_BENCH/setup-dovecot.sh; set SHARED_BENCH"; exit 1; }

cd "$ROOT"
log "building loftbench"
go build -o "$TMP/loftbench" ./bench/loftbench
LOFT_EXE=$TMP/loft
if [ -n "${LOFT_BIN:-}" ]; then
	LOFT_EXE=$(cd "$(dirname "$LOFT_BIN")" && pwd)/$(basename "$LOFT_BIN")
else
	log "building loft"
	go build -o "$LOFT_EXE" ./cmd/loft
fi

USERS=()
for i in $(seq "$FIRST" $((FIRST + MAXCONNS - 1))); do USERS+=("bench$i@$DOMAIN"); done
RCPTS=$(IFS=,; echo "${USERS[*]}")

# (a) Dovecot: start, empty the benchmark accounts, fill them.
DOVECOT_STARTED=1
bash "$SHARED_BENCH/setup-dovecot.sh" >&2
for _ in $(seq 1 50); do port_open 11110 && port_open 11024 && break; sleep 0.1; done
port_open 11110 || { log "Dovecot POP3 is not listening on $DOVECOT_POP3"; exit 1; }
for u in "${USERS[@]}"; do
	doveadm -c "$DOVECOT_CONF" expunge -u "${u%@*}" mailbox INBOX all 2>/dev/null || true
done
log "filling ${USERS[*]} in Dovecot"
"$TMP/loftbench" fill --addr "$DOVECOT_LMTP" --mbox "$MBOX" --rcpt "$RCPTS" >&2

# (b) Loft, from a temp dir with its own data.
if port_open 12110 || port_open 12524; then log "something already listens on $LOFT_POP3 or $LOFT_LMTP"; exit 1; fi
CFG=$TMP/loft.toml
cat >"$CFG" <<-EOF
	hostname = "localhost"
	domains  = ["$DOMAIN"]
	data_dir = "$TMP/data"

	[listen]
	lmtp = "$LOFT_LMTP"
	pop3 = "$LOFT_POP3"

	[quota]
	default = "unlimited"
EOF
cd "$TMP"
for u in "${USERS[@]}"; do
	echo pass | "$LOFT_EXE" account add --config "$CFG" "$u" >/dev/null || { log "loft account add $u failed"; exit 1; }
done
"$LOFT_EXE" serve --config "$CFG" >"$TMP/loft.log" 2>&1 &
LOFT_PID=$!
for _ in $(seq 1 100); do
	kill -0 "$LOFT_PID" 2>/dev/null || { log "loft serve exited at start"; exit 1; }
	port_open 12110 && port_open 12524 && break
	sleep 0.1
done
port_open 12110 || { log "loft serve is not listening on $LOFT_POP3 after 10 s"; exit 1; }
log "loft started (pid $LOFT_PID)"
cd "$ROOT"
log "filling ${USERS[*]} in Loft"
"$TMP/loftbench" fill --addr "$LOFT_LMTP" --mbox "$MBOX" --rcpt "$RCPTS" >&2

# bench NAME ADDR CONNS ROUND: one run; prints "MB/s errors" and keeps the JSON in $TMP.
bench() {
	local out=$TMP/$1-$3-$4.json rc=0
	"$TMP/loftbench" pop3 --addr "$2" --conns "$3" --user-format "bench%d@$DOMAIN" --first "$FIRST" \
		--password pass --pipeline "$PIPELINE" --json >"$out" || rc=$?
	[ "$rc" -le 1 ] || { log "loftbench against $1 failed to run (status $rc)"; return 1; }
	local rate errs msgs secs
	rate=$(sed -n 's/^ *"mb_per_sec": *\([0-9.eE+-]*\),*$/\1/p' "$out")
	errs=$(sed -n 's/^ *"errors": *\([0-9]*\),*$/\1/p' "$out")
	msgs=$(sed -n 's/^ *"messages": *\([0-9]*\),*$/\1/p' "$out")
	secs=$(sed -n 's/^ *"seconds": *\([0-9.eE+-]*\),*$/\1/p' "$out")
	log "$(printf '%-8s %s sessions, round %s: %7.1f MB/s, %s messages in %.2f s, %s errors' "$1" "$3" "$4" "$rate" "$msgs" "$secs" "$errs")"
	echo "$rate $errs"
}

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# (c) A warm-up session on each (Dovecot builds its index caches on the first POP3 login),
# then alternate the two servers at each session count, so that drift hits both alike.
bench dovecot "$DOVECOT_POP3" 1 warmup >/dev/null
bench loft "$LOFT_POP3" 1 warmup >/dev/null
declare -A DOV_RATES LOFT_RATES DOV_ERRS LOFT_ERRS
for c in $CONNS; do
	for r in $(seq 1 "$ROUNDS"); do
		read -r rate errs <<<"$(bench dovecot "$DOVECOT_POP3" "$c" "$r")"
		DOV_RATES[$c]+="$rate "; DOV_ERRS[$c]=$(( ${DOV_ERRS[$c]:-0} + errs ))
		read -r rate errs <<<"$(bench loft "$LOFT_POP3" "$c" "$r")"
		LOFT_RATES[$c]+="$rate "; LOFT_ERRS[$c]=$(( ${LOFT_ERRS[$c]:-0} + errs ))
	done
done

# (d) The table: median MB/s, and Loft's as a multiple of Dovecot's.
cell() { # "rate errors" -> "123.4" or "123.4 (5 errors)"
	awk -v r="$1" -v e="$2" 'BEGIN { printf "%.1f", r; if (e > 0) printf " (%d errors)", e }'
}
SET_MSGS=$(grep -c '^From ' "$MBOX")
echo
echo "POP3 download (log in, UIDL, RETR all, QUIT) of $(basename "$MBOX") ($SET_MSGS messages per account), pipeline $PIPELINE, median of $ROUNDS, $(nproc) CPUs, $(date -u +%Y-%m-%d)"
echo
echo "| sessions | Dovecot MB/s | Loft MB/s | Loft/Dovecot |"
echo "|---:|---:|---:|---:|"
for c in $CONNS; do
	d=$(tr ' ' '\n' <<<"${DOV_RATES[$c]}" | grep . | median)
	l=$(tr ' ' '\n' <<<"${LOFT_RATES[$c]}" | grep . | median)
	ratio=$(awk -v l="$l" -v d="$d" 'BEGIN { if (d > 0) printf "%.2f", l / d; else print "-" }')
	echo "| $c | $(cell "$d" "${DOV_ERRS[$c]}") | $(cell "$l" "${LOFT_ERRS[$c]}") | $ratio |"
done
# (e) cleanup (trap) stops both servers.
