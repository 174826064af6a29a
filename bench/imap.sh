#!/bin/bash
# IMAP, Dovecot vs Loft, side by side on this machine (loopback only): issue 4's "Speed".
#
# Starts the private benchmark Dovecot (shared/bench/setup-dovecot.sh: IMAP 127.0.0.1:11143,
# LMTP 11024, users bench1..bench1000) and a fresh Loft from a temp dir (IMAP and LMTP on free
# loopback ports from 12143 and 12624). On both:
#   - accounts bench301..bench350 (Dovecot's emptied first) get MAILBOX_SIZE messages each of
#     the standard set, over LMTP;
#   - account bench1000 gets BIG small generated messages, over LMTP with 16 connections
#     (Dovecot's is reused when it already holds exactly that many, topped up when fewer).
# Then, alternating Dovecot and Loft:
#   1. the mixed profile (loftbench imap) at each CLIENTS count, ROUNDS rounds of DURATION,
#      after one warm-up session per account; plus LPL rounds per login at 10 clients;
#   2. imap-big on bench1000: SELECT, UID FETCH 1:* (FLAGS), UID FETCH 1:* (BODY.PEEK[]);
#   3. imap-idle: IDLE_SESSIONS sessions in IDLE on bench301..bench350, PSS per session (all of
#      it and its anonymous part), after one login per account (--warm-logins).
# Loft is restarted (same data) before each of the three with `serve --cpuprofile`, so each
# has its own profile in $OUT. Prints markdown tables with ratios. Both servers are stopped at
# the end, also on failure or ^C (Dovecot only if this script started it). Needs root (for
# Dovecot), Go, python3.
#
# Environment:
#   SHARED_BENCH   shared/bench directory      (default: $(dirname "$0")/../../shared/bench)
#   BENCH          Dovecot state and mbox dir  (default: /tmp/bench, as setup-dovecot.sh)
#   CLIENTS        client counts               (default: "10 50"; at most 50)
#   ROUNDS         rounds per server and count (default: 3; the median is reported)
#   DURATION       length of one round         (default: 30s)
#   MAILBOX_SIZE   messages per mixed account  (default: 300)
#   LPL            SELECT..APPEND rounds per login for the extra 10-client run (default: 10; 0: none)
#   BIG            messages in the big mailbox (default: 100000)
#   FILL_LIMIT     bound on each LMTP fill     (default: 1500s; a short fill is reported)
#   IDLE_SESSIONS  sessions in IDLE            (default: 1000)
#   SKIP_MIXED=1, SKIP_BIG=1, SKIP_IDLE=1      leave a part out
#   PROFILE=0      no CPU profiles
#   LOFT_BIN       use this loft binary instead of building ./cmd/loft
#   OUT            where JSON results, profiles and Loft's log go (default: $TMP/out)
#   KEEP_TMP=1     keep the temp dir (Loft's data, config, and $OUT if it is inside)
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$HERE/../../shared/bench}
export BENCH=${BENCH:-/tmp/bench}
MBOX=$BENCH/data/bench.mbox
CLIENTS=${CLIENTS:-"10 50"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-30s}
MAILBOX_SIZE=${MAILBOX_SIZE:-300}
LPL=${LPL:-10}
BIG=${BIG:-100000}
FILL_LIMIT=${FILL_LIMIT:-1500s}
IDLE_SESSIONS=${IDLE_SESSIONS:-1000}
PROFILE=${PROFILE:-1}

DOMAIN=bench.test     # Dovecot strips it (auth_username_format = %Ln): bench301@bench.test is bench301
FIRST=301             # mixed accounts bench301..; apart from lmtp.sh's 1..100 and pop3.sh's 901..904
MIXED_FORMAT='bench3%02d' # loftbench lmtp numbers recipients 1..N: this makes them bench301..
BIG_FORMAT='bench%d000'   # ... and with --accounts 1 this makes bench1000
BIG_USER=bench1000
DOVECOT_CONF=$BENCH/dovecot/dovecot.conf
DOVECOT_IMAP=127.0.0.1:11143
DOVECOT_LMTP=127.0.0.1:11024

LOG_PREFIX=imap.sh
source "$HERE/lib.sh"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/loft-imap-bench.XXXXXX")
OUT=${OUT:-$TMP/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOFT_PID=
DOVECOT_STARTED=

cleanup() {
	local rc=$?
	set +e
	stop_loft
	if [ -n "$DOVECOT_STARTED" ]; then
		bash "$SHARED_BENCH/stop-dovecot.sh" >&2
	fi
	if [ "$rc" -ne 0 ] && [ -s "$OUT/loft.log" ]; then
		log "failed; last lines of the Loft log:"
		tail -n 20 "$OUT/loft.log" >&2
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

[ "$(id -u)" = 0 ] || { log "needs root (setup-dovecot.sh installs and starts Dovecot)"; exit 1; }
[ -x "$SHARED_BENCH/setup-dovecot.sh" ] || { log "no $SHARED_BENCH/setup-dovecot.sh; set SHARED_BENCH"; exit 1; }
MAXC=0
for c in $CLIENTS; do [ "$c" -gt "$MAXC" ] && MAXC=$c; done
[ "$MAXC" -ge 10 ] && [ "$MAXC" -le 50 ] || { log "CLIENTS must include 10 and stay at most 50 (got $CLIENTS)"; exit 1; }
ACCOUNTS=$MAXC

# Build first, so that a compile error stops us before any server starts.
cd "$ROOT"
log "building loftbench"
go build -o "$TMP/loftbench" ./bench/loftbench
LB=$TMP/loftbench
if [ -n "${LOFT_BIN:-}" ]; then
	LOFT_EXE=$(cd "$(dirname "$LOFT_BIN")" && pwd)/$(basename "$LOFT_BIN")
else
	log "building loft"
	LOFT_EXE=$TMP/loft
	go build -o "$LOFT_EXE" ./cmd/loft
fi
log "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# json FILE KEY: a top-level number of a loftbench JSON result.
json() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# fill NAME ADDR MBOX CONNS ACCOUNTS FORMAT COUNT: one LMTP fill; prints the messages delivered.
fill() {
	local out=$OUT/fill-$1.json rc=0
	"$LB" lmtp --addr "$2" --mbox "$3" --conns "$4" --accounts "$5" --user-format "$6" \
		--domain "$DOMAIN" --count "$7" --duration "$FILL_LIMIT" --json >"$out" || rc=$?
	[ "$rc" -le 1 ] || { log "fill $1 failed to run (status $rc)"; return 1; }
	local n
	n=$(json "$out" messages)
	log "fill $1: $n of $7 messages in $(json "$out" seconds) s ($(json "$out" msgs_per_sec) msgs/s, $(json "$out" errors) errors)"
	echo "$n"
}

# The BIG small messages of the big mailbox (lib.sh).
SMALL=$TMP/small.mbox
small_mbox "$BIG" "$BIG_USER" >"$SMALL"

# (a) Dovecot.
dovecot_running || DOVECOT_STARTED=1 # one that was already running is left running at the end
bash "$SHARED_BENCH/setup-dovecot.sh" >&2
for _ in $(seq 1 50); do port_open 11143 && port_open 11024 && break; sleep 0.1; done
port_open 11143 || { log "Dovecot IMAP is not listening on $DOVECOT_IMAP"; exit 1; }
DOVECOT_PID=$(cat "$BENCH/dovecot/run/master.pid")

# (b) Loft, from a temp dir with its own data, filled while running without a profile.
LOFT_IMAP_PORT=$(free_port 12143)
LOFT_LMTP_PORT=$(free_port 12624)
LOFT_IMAP=127.0.0.1:$LOFT_IMAP_PORT
LOFT_LMTP=127.0.0.1:$LOFT_LMTP_PORT
CFG=$TMP/loft.toml
cat >"$CFG" <<-EOF
	hostname = "localhost"
	domains  = ["$DOMAIN"]
	data_dir = "$TMP/data"

	[listen]
	smtp  = ""
	lmtp  = "$LOFT_LMTP"
	imap  = "$LOFT_IMAP"
	imaps = ""
	pop3  = ""
	pop3s = ""

	[quota]
	default = "unlimited"

	# 1000 idle sessions and 50 clients, all from 127.0.0.1 (Dovecot's config is raised alike).
	[limits]
	max_connections_per_ip      = 2000
	max_sessions_per_account_ip = 1000
EOF
log "creating bench$FIRST..bench$((FIRST + ACCOUNTS - 1)) and $BIG_USER @$DOMAIN in Loft"
for u in $(seq "$FIRST" $((FIRST + ACCOUNTS - 1))) 1000; do
	echo pass | "$LOFT_EXE" account add --config "$CFG" "bench$u@$DOMAIN" >/dev/null ||
		{ log "loft account add bench$u@$DOMAIN failed"; exit 1; }
done
start_loft "$CFG" "$OUT/loft.log" "$LOFT_IMAP_PORT" "$LOFT_LMTP_PORT"

if [ "${SKIP_MIXED:-0}" != 1 ] || [ "${SKIP_IDLE:-0}" != 1 ]; then
	COUNT=$((ACCOUNTS * MAILBOX_SIZE))
	log "filling bench$FIRST.. with $MAILBOX_SIZE messages each: Loft"
	fill loft-mixed "$LOFT_LMTP" "$MBOX" 8 "$ACCOUNTS" "$MIXED_FORMAT" "$COUNT" >/dev/null
	log "emptying and filling bench$FIRST.. in Dovecot"
	for u in $(seq "$FIRST" $((FIRST + ACCOUNTS - 1))); do
		doveadm -c "$DOVECOT_CONF" expunge -u "bench$u" mailbox INBOX all 2>/dev/null || true
	done
	fill dovecot-mixed "$DOVECOT_LMTP" "$MBOX" 8 "$ACCOUNTS" "$MIXED_FORMAT" "$COUNT" >/dev/null
fi
BIG_N=0
if [ "${SKIP_BIG:-0}" != 1 ]; then
	log "filling $BIG_USER with $BIG small messages: Loft"
	BIG_N=$(fill loft-big "$LOFT_LMTP" "$SMALL" 16 1 "$BIG_FORMAT" "$BIG")
	have=$(doveadm -c "$DOVECOT_CONF" mailbox status -u "$BIG_USER" messages INBOX 2>/dev/null | sed -n 's/.*messages=\([0-9]*\).*/\1/p')
	have=${have:-0}
	if [ "$have" -gt "$BIG_N" ]; then
		log "emptying $BIG_USER in Dovecot (it holds $have messages)"
		doveadm -c "$DOVECOT_CONF" expunge -u "$BIG_USER" mailbox INBOX all 2>/dev/null || true
		have=0
	fi
	if [ "$have" = "$BIG_N" ]; then
		log "Dovecot's $BIG_USER already holds $BIG_N messages; reusing them"
	else
		# Dovecot's maildir takes long for 100,000 (its deliveries slow down as the mailbox
		# grows), so a mailbox that an earlier run left short is topped up, not refilled.
		log "filling $BIG_USER with $((BIG_N - have)) small messages to $BIG_N: Dovecot"
		DBIG=$(fill dovecot-big "$DOVECOT_LMTP" "$SMALL" 16 1 "$BIG_FORMAT" $((BIG_N - have)))
		[ $((have + DBIG)) = "$BIG_N" ] || log "WARNING: Dovecot's big mailbox holds $((have + DBIG)) messages, Loft's $BIG_N"
	fi
fi
stop_loft

# restart_loft PHASE: Loft on the same data, profiled into $OUT/loft-PHASE.cpu.
restart_loft() {
	stop_loft
	local prof=()
	[ "$PROFILE" = 1 ] && prof=(--cpuprofile "$OUT/loft-$1.cpu")
	start_loft "$CFG" "$OUT/loft.log" "$LOFT_IMAP_PORT" "$LOFT_LMTP_PORT" -- "${prof[@]}"
}

# mixed NAME ADDR PID CLIENTS ROUND [EXTRA FLAGS]: one mixed-profile round; keeps the JSON.
mixed() {
	local name=$1 addr=$2 pid=$3 c=$4 r=$5 rc=0
	shift 5
	local out=$OUT/mixed-$name-$c${1:+-lpl}-$r.json
	"$LB" imap --addr "$addr" --clients "$c" --accounts "$ACCOUNTS" --first "$FIRST" \
		--user-format 'bench%d' --domain "$DOMAIN" --password pass --duration "$DURATION" \
		--mbox "$MBOX" --server-pid "$pid" --seed "$r" --json "$@" >"$out" || rc=$?
	[ "$rc" -le 1 ] || { log "loftbench imap against $name failed to run (status $rc)"; return 1; }
	log "$(python3 - "$out" "$name" "$c" "$r" <<-'EOF'
		import json, sys
		j = json.load(open(sys.argv[1]))
		print("%-8s %2s clients, round %s: %7.1f commands/s, p50 %.2f ms, p99 %.1f ms, %d errors; "
		      "server CPU %.0f us/cmd, client %.0f us/cmd, host busy %.0f%%, load %s" % (sys.argv[2], sys.argv[3], sys.argv[4],
		      j["commands_per_sec"], j["p50_ms"], j["p99_ms"], j["errors"], j.get("server_us_per_command", 0),
		      j["client_us_per_command"], j["host_busy_percent"], j["load_average"]))
	EOF
	)"
}

# (c) The mixed profile.
if [ "${SKIP_MIXED:-0}" != 1 ]; then
	restart_loft mixed
	log "warm-up: one session per account on each server"
	for s in dovecot loft; do
		addr=$DOVECOT_IMAP pid=$DOVECOT_PID
		[ $s = loft ] && addr=$LOFT_IMAP pid=$LOFT_PID
		"$LB" imap --addr "$addr" --clients "$ACCOUNTS" --first "$FIRST" --user-format 'bench%d' \
			--domain "$DOMAIN" --loops 1 --duration 120s --mbox "$MBOX" >/dev/null ||
			{ log "warm-up against $s failed"; exit 1; }
	done
	for c in $CLIENTS; do
		for r in $(seq 1 "$ROUNDS"); do
			mixed dovecot "$DOVECOT_IMAP" "$DOVECOT_PID" "$c" "$r"
			mixed loft "$LOFT_IMAP" "$LOFT_PID" "$c" "$r"
		done
	done
	if [ "$LPL" -gt 1 ]; then
		for r in $(seq 1 "$ROUNDS"); do
			mixed dovecot "$DOVECOT_IMAP" "$DOVECOT_PID" 10 "$r" --loops-per-login "$LPL"
			mixed loft "$LOFT_IMAP" "$LOFT_PID" 10 "$r" --loops-per-login "$LPL"
		done
	fi
fi

# (d) The big mailbox: one warm-up pass, then 3 timed rounds of each command.
if [ "${SKIP_BIG:-0}" != 1 ]; then
	restart_loft big
	for s in dovecot loft; do
		addr=$DOVECOT_IMAP
		[ $s = loft ] && addr=$LOFT_IMAP
		"$LB" imap-big --addr "$addr" --user "$BIG_USER@$DOMAIN" --password pass --rounds 3 \
			--json >"$OUT/big-$s.json" || { log "imap-big against $s failed"; exit 1; }
		log "$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(sys.argv[2], j["exists"], "messages:", "; ".join("%s best %.4f s median %.4f s" % (s["command"], s["best"], s["median"]) for s in j["steps"]))' "$OUT/big-$s.json" $s)"
	done
fi

# (e) Sessions in IDLE: Dovecot's imap processes, Loft's one process.
if [ "${SKIP_IDLE:-0}" != 1 ]; then
	restart_loft idle
	for s in dovecot loft; do
		args=(--addr "$DOVECOT_IMAP" --pid "$DOVECOT_PID" --comm imap)
		[ $s = loft ] && args=(--addr "$LOFT_IMAP" --pid "$LOFT_PID")
		"$LB" imap-idle "${args[@]}" --sessions "$IDLE_SESSIONS" --accounts "$ACCOUNTS" --first "$FIRST" \
			--user-format 'bench%d' --domain "$DOMAIN" --password pass --warm-logins --json >"$OUT/idle-$s.json" ||
			{ log "imap-idle against $s failed"; exit 1; }
		log "$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%s: %d sessions, %.0f KB PSS each (growth %.0f KB each, second half %.0f KB each; anonymous growth %.0f KB each, second half %.0f KB each), %d processes, opened in %.1f s" % (sys.argv[2], j["sessions"], j["kb_per_session"], j["delta_kb_per_session"], j["marginal_kb_per_session"], j["anon_delta_kb_per_session"], j["anon_marginal_kb_per_session"], j["processes"], j["open_seconds"]))' "$OUT/idle-$s.json" $s)"
	done
fi
stop_loft

# (f) The tables, and the top of each Loft profile.
python3 - "$OUT" "$CLIENTS" "$ROUNDS" "$LPL" "$DURATION" "$MAILBOX_SIZE" <<-'EOF'
	import glob, json, os, statistics, sys, time
	out, clients, rounds, lpl, duration, size = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
	def load(p):
	    return json.load(open(p)) if os.path.exists(p) else None
	def runs(server, c, lplrun):
	    return [j for j in (load("%s/mixed-%s-%s%s-%d.json" % (out, server, c, "-lpl" if lplrun else "", r)) for r in range(1, rounds + 1)) if j]
	def med(rs, key):
	    return statistics.median(j[key] for j in rs)
	def ratio(a, b):
	    return "%.2f" % (a / b) if b else "-"
	print()
	print("IMAP, Dovecot vs Loft, %d CPUs, %s. Ratio: how many times better Loft is (> 1: Loft better)." % (os.cpu_count(), time.strftime("%Y-%m-%d", time.gmtime())))
	print()
	print("| measurement | Dovecot | Loft | ratio |")
	print("|---|---:|---:|---:|")
	mixedrows = [(c, False) for c in clients] + ([("10", True)] if lpl > 1 else [])
	for c, l in mixedrows:
	    d, f = runs("dovecot", c, l), runs("loft", c, l)
	    if not d or not f:
	        continue
	    what = "mixed, %s clients%s: commands/s (median of %d × %s)" % (c, ", %d rounds per login" % lpl if l else "", len(d), duration)
	    de, fe = sum(j["errors"] for j in d), sum(j["errors"] for j in f)
	    cell = lambda v, e: "%.0f%s" % (v, " (%d errors)" % e if e else "")
	    print("| %s | %s | %s | %s |" % (what, cell(med(d, "commands_per_sec"), de), cell(med(f, "commands_per_sec"), fe), ratio(med(f, "commands_per_sec"), med(d, "commands_per_sec"))))
	    print("| ↳ server CPU per command (µs) | %.0f | %.0f | %s |" % (med(d, "server_us_per_command"), med(f, "server_us_per_command"), ratio(med(d, "server_us_per_command"), med(f, "server_us_per_command"))))
	bd, bl = load(out + "/big-dovecot.json"), load(out + "/big-loft.json")
	if bd and bl:
	    for sd, sl in zip(bd["steps"], bl["steps"]):
	        cmd = sd["command"].replace("SELECT INBOX", "SELECT")
	        n = "%d msgs" % bl["exists"] if bd["exists"] == bl["exists"] else "%d (Dovecot) / %d (Loft) msgs" % (bd["exists"], bl["exists"])
	        print("| %s: `%s` s, best / median of 3 | %.4f / %.4f | %.4f / %.4f | %s / %s |" % (
	            n, cmd, sd["best"], sd["median"], sl["best"], sl["median"], ratio(sd["best"], sl["best"]), ratio(sd["median"], sl["median"])))
	idd, idl = load(out + "/idle-dovecot.json"), load(out + "/idle-loft.json")
	if idd and idl:
	    print("| %d sessions in IDLE: KB PSS per session (total / N) | %.0f | %.0f | %s |" % (idl["sessions"], idd["kb_per_session"], idl["kb_per_session"], ratio(idd["kb_per_session"], idl["kb_per_session"])))
	    print("| ↳ growth from before / N | %.0f | %.0f | %s |" % (idd["delta_kb_per_session"], idl["delta_kb_per_session"], ratio(idd["delta_kb_per_session"], idl["delta_kb_per_session"])))
	    print("| ↳ growth from %d to %d sessions / %d (marginal) | %.0f | %.0f | %s |" % (idl["half_sessions"], idl["sessions"], idl["sessions"] - idl["half_sessions"],
	        idd["marginal_kb_per_session"], idl["marginal_kb_per_session"], ratio(idd["marginal_kb_per_session"], idl["marginal_kb_per_session"])))
	    print("| ↳ anonymous (Pss_Anon) growth from before / N | %.0f | %.0f | %s |" % (idd["anon_delta_kb_per_session"], idl["anon_delta_kb_per_session"], ratio(idd["anon_delta_kb_per_session"], idl["anon_delta_kb_per_session"])))
	    print("| ↳ anonymous growth from %d to %d sessions / %d (marginal) | %.0f | %.0f | %s |" % (idl["half_sessions"], idl["sessions"], idl["sessions"] - idl["half_sessions"],
	        idd["anon_marginal_kb_per_session"], idl["anon_marginal_kb_per_session"], ratio(idd["anon_marginal_kb_per_session"], idl["anon_marginal_kb_per_session"])))
	    print("| ↳ PSS before the sessions (after one login per account), MB | %.1f | %.1f | |" % (idd["pss_before_kb"] / 1024, idl["pss_before_kb"] / 1024))
	# Per-command latency at the largest client count, from the round with the median rate.
	c = clients[-1]
	d, f = runs("dovecot", c, False), runs("loft", c, False)
	if d and f:
	    pick = lambda rs: sorted(rs, key=lambda j: j["commands_per_sec"])[len(rs) // 2]
	    d, f = pick(d), pick(f)
	    print()
	    print("Mixed profile, %s clients, mailboxes of ~%s messages: latency per command, ms (median round)" % (c, size))
	    print()
	    print("| command | Dovecot p50 | Dovecot p99 | Loft p50 | Loft p99 |")
	    print("|---|---:|---:|---:|---:|")
	    for od, ol in zip(d["ops"], f["ops"]):
	        print("| %s | %.2f | %.1f | %.2f | %.1f |" % (od["name"], od["p50_ms"], od["p99_ms"], ol["p50_ms"], ol["p99_ms"]))
	    print()
	    print("loftbench's own CPU: %.0f µs per command against Dovecot, %.0f against Loft; host busy %.0f %% and %.0f %%." % (
	        d["client_us_per_command"], f["client_us_per_command"], d["host_busy_percent"], f["host_busy_percent"]))
EOF
if [ "$PROFILE" = 1 ]; then
	for p in "$OUT"/loft-*.cpu; do
		[ -s "$p" ] || continue
		go tool pprof -top -nodecount=30 "$p" >"${p%.cpu}.top" 2>/dev/null || true
		echo
		echo "Top of $(basename "$p") (go tool pprof -top; full list in ${p%.cpu}.top):"
		echo
		sed -n '1,/flat%/p' "${p%.cpu}.top" | tail -n 3 | sed 's/^/    /'
		sed -n '/flat%/,$p' "${p%.cpu}.top" | sed -n '2,13p' | sed 's/^/    /'
	done
fi
log "results in $OUT"
# (g) cleanup (trap) stops both servers.
