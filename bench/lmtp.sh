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
#   SKIP_LOFT=1   measure Dovecot only
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
LOFT_LMTP_PORT=12424
LOFT_LMTP=127.0.0.1:$LOFT_LMTP_PORT

LOG_PREFIX=lmtp.sh
source "$HERE/lib.sh"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/loft-lmtp-bench.XXXXXX")
LOFT_LOG=$TMP/loft.log
trap cleanup EXIT
trap 'exit 130' INT TERM

need_root_and_dovecot
build_tools

# (a) Dovecot.
start_dovecot 11024

# (b) Loft, from a temp dir with its own data.
if [ "$SKIP_LOFT" != 1 ]; then
	if port_open "$LOFT_LMTP_PORT"; then log "something already listens on $LOFT_LMTP"; exit 1; fi
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
	log "creating bench1..bench$ACCOUNTS@$DOMAIN in Loft"
	mapfile -t users < <(seq -f "bench%g@$DOMAIN" 1 "$ACCOUNTS")
	add_accounts "$CFG" "${users[@]}"
	start_loft "$CFG" "$LOFT_LOG" "$LOFT_LMTP_PORT"
fi

# bench NAME ADDR CONNS: one run; prints "msgs/s errors" and keeps the JSON in $TMP.
bench() {
	local out=$TMP/$1-$3.json rc=0
	"$LB" lmtp --addr "$2" --mbox "$MBOX" --conns "$3" --accounts "$ACCOUNTS" \
		--domain "$DOMAIN" --user-format 'bench%d' --count "$COUNT" --duration "$DURATION" \
		--json >"$out" || rc=$?
	# 1 means some transactions failed: reported, the run still counts. 2 means no run at all.
	[ "$rc" -le 1 ] || { log "loftbench against $1 failed to run (status $rc)"; return 1; }
	local rate errs p50 p99
	rate=$(json_num "$out" msgs_per_sec)
	errs=$(json_num "$out" errors)
	p50=$(json_num "$out" p50_ms)
	p99=$(json_num "$out" p99_ms)
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
		echo "| $c | $(cell "$drate" "$derr") | $(cell "$lrate" "$lerr") | $(ratio "$lrate" "$drate") |"
	fi
done
# (e) cleanup (trap) stops both servers.
