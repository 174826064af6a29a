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
LOFT_POP3_PORT=12110
LOFT_LMTP_PORT=12524
LOFT_POP3=127.0.0.1:$LOFT_POP3_PORT
LOFT_LMTP=127.0.0.1:$LOFT_LMTP_PORT

LOG_PREFIX=pop3.sh
source "$HERE/lib.sh"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/loft-pop3-bench.XXXXXX")
LOFT_LOG=$TMP/loft.log
trap cleanup EXIT
trap 'exit 130' INT TERM

need_root_and_dovecot
build_tools

USERS=()
for i in $(seq "$FIRST" $((FIRST + MAXCONNS - 1))); do USERS+=("bench$i@$DOMAIN"); done
RCPTS=$(IFS=,; echo "${USERS[*]}")

# (a) Dovecot: start, empty the benchmark accounts, fill them.
start_dovecot 11110 11024
for u in "${USERS[@]}"; do
	doveadm -c "$DOVECOT_CONF" expunge -u "${u%@*}" mailbox INBOX all 2>/dev/null || true
done
log "filling ${USERS[*]} in Dovecot"
"$LB" fill --addr "$DOVECOT_LMTP" --mbox "$MBOX" --rcpt "$RCPTS" >&2

# (b) Loft, from a temp dir with its own data.
if port_open "$LOFT_POP3_PORT" || port_open "$LOFT_LMTP_PORT"; then
	log "something already listens on $LOFT_POP3 or $LOFT_LMTP"
	exit 1
fi
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
add_accounts "$CFG" "${USERS[@]}"
start_loft "$CFG" "$LOFT_LOG" "$LOFT_POP3_PORT" "$LOFT_LMTP_PORT"
log "filling ${USERS[*]} in Loft"
"$LB" fill --addr "$LOFT_LMTP" --mbox "$MBOX" --rcpt "$RCPTS" >&2

# bench NAME ADDR CONNS ROUND: one run; prints "MB/s errors" and keeps the JSON in $TMP.
bench() {
	local out=$TMP/$1-$3-$4.json rc=0
	"$LB" pop3 --addr "$2" --conns "$3" --user-format "bench%d@$DOMAIN" --first "$FIRST" \
		--password pass --pipeline "$PIPELINE" --json >"$out" || rc=$?
	[ "$rc" -le 1 ] || { log "loftbench against $1 failed to run (status $rc)"; return 1; }
	local rate errs msgs secs
	rate=$(json_num "$out" mb_per_sec)
	errs=$(json_num "$out" errors)
	msgs=$(json_num "$out" messages)
	secs=$(json_num "$out" seconds)
	log "$(printf '%-8s %s sessions, round %s: %7.1f MB/s, %s messages in %.2f s, %s errors' "$1" "$3" "$4" "$rate" "$msgs" "$secs" "$errs")"
	echo "$rate $errs"
}

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
SET_MSGS=$(grep -c '^From ' "$MBOX")
echo
echo "POP3 download (log in, UIDL, RETR all, QUIT) of $(basename "$MBOX") ($SET_MSGS messages per account), pipeline $PIPELINE, median of $ROUNDS, $(nproc) CPUs, $(date -u +%Y-%m-%d)"
echo
echo "| sessions | Dovecot MB/s | Loft MB/s | Loft/Dovecot |"
echo "|---:|---:|---:|---:|"
for c in $CONNS; do
	d=$(tr ' ' '\n' <<<"${DOV_RATES[$c]}" | grep . | median)
	l=$(tr ' ' '\n' <<<"${LOFT_RATES[$c]}" | grep . | median)
	echo "| $c | $(cell "$d" "${DOV_ERRS[$c]}") | $(cell "$l" "${LOFT_ERRS[$c]}") | $(ratio "$l" "$d") |"
done
# (e) cleanup (trap) stops both servers.
