#!/bin/bash
# IMAP resync, search and compression, Dovecot vs Loft, side by side on this machine (loopback
# only): issue 5's "Speed".
#
# Starts the private benchmark Dovecot (shared/bench/setup-dovecot.sh: IMAP 127.0.0.1:11143,
# LMTP 11024, users bench1..bench1000) and a fresh Loft from a temp dir (IMAP and LMTP on free
# loopback ports from 13143 and 13624). On both:
#   - bench1000 holds BIG small generated messages (lib.sh's small_mbox, as imap.sh makes them),
#     Loft's delivered over LMTP with 16 connections; Dovecot's is reused, and topped up with
#     new Message-IDs when it holds fewer;
#   - bench902 holds the standard set ($BENCH/data/bench.mbox, 2,000 messages), delivered over
#     one LMTP connection (Dovecot's is reused when it holds 2,000).
# Then for each part, Dovecot and then Loft, `loftbench imap-sync` (bench/loftbench/imapsync.go):
#   resync:   SELECT INBOX (QRESYNC (uidvalidity modseq)) on bench1000 with no change and after
#             10 changes by another session (6 flags, 2 expunges, 2 APPENDs): time and bytes;
#   search:   SEARCH TEXT, SORT (DATE), THREAD REFERENCES on bench1000 and bench902;
#   compress: FETCH 1:* (BODY.PEEK[HEADER]) of bench902 with and without COMPRESS=DEFLATE.
# ROUNDS timed runs of each command after an untimed one. Loft is restarted (same data) before
# the measurements with `serve --cpuprofile` when PROFILE=1. Prints markdown tables with
# ratios. Both servers are stopped at the end, also on failure or ^C (Dovecot only if this
# script started it). Needs root (for Dovecot), Go, python3.
#
# Environment:
#   SHARED_BENCH   shared/bench directory      (default: $(dirname "$0")/../../shared/bench)
#   BENCH          Dovecot state and mbox dir  (default: /tmp/bench, as setup-dovecot.sh)
#   BIG            messages in bench1000       (default: 100000)
#   ROUNDS         timed runs of each command  (default: 5)
#   PARTS          parts to run                (default: resync,search,compress)
#   FILL_LIMIT     bound on each LMTP fill     (default: 1500s)
#   INDEX_LIMIT    bound on waiting for Loft's text indexer after the fills (default: 900 s)
#   LOFT_DATA      a Loft data dir filled by an earlier run (kept with KEEP_TMP=1): no fill
#   PROFILE=0      no CPU profile
#   LOFT_BIN       use this loft binary instead of building ./cmd/loft
#   OUT            where JSON results, the profile and Loft's log go (default: $TMP/out)
#   KEEP_TMP=1     keep the temp dir (Loft's data, config, and $OUT if it is inside)
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$HERE/../../shared/bench}
export BENCH=${BENCH:-/tmp/bench}
MBOX=$BENCH/data/bench.mbox
BIG=${BIG:-100000}
ROUNDS=${ROUNDS:-5}
PARTS=${PARTS:-resync,search,compress}
FILL_LIMIT=${FILL_LIMIT:-1500s}
INDEX_LIMIT=${INDEX_LIMIT:-900}
PROFILE=${PROFILE:-1}

DOMAIN=bench.test         # Dovecot strips it (auth_username_format = %Ln)
BIG_USER=bench1000
BIG_FORMAT='bench%d000'   # loftbench lmtp numbers recipients 1..N: with --accounts 1, bench1000
STD_USER=bench902         # the standard set, as in shared/bench's Dovecot
STD_SIZE=2000
DOVECOT_CONF=$BENCH/dovecot/dovecot.conf
DOVECOT_IMAP=127.0.0.1:11143
DOVECOT_LMTP=127.0.0.1:11024

LOG_PREFIX=imap-sync.sh
source "$HERE/lib.sh"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/loft-imap-sync.XXXXXX")
OUT=${OUT:-$TMP/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOFT_LOG=$OUT/loft.log
trap cleanup EXIT
trap 'exit 130' INT TERM

need_root_and_dovecot
if [ -n "${LOFT_DATA:-}" ]; then
	[ -f "$LOFT_DATA/loft.db" ] || { log "LOFT_DATA=$LOFT_DATA holds no loft.db"; exit 1; }
	LOFT_DATA=$(cd "$LOFT_DATA" && pwd)
fi
build_tools
log "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# json FILE KEY: a top-level value of a loftbench JSON result.
json() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# dovecot_count USER: the messages of USER's INBOX in Dovecot.
dovecot_count() {
	local n
	n=$(doveadm -c "$DOVECOT_CONF" mailbox status -u "$1" messages INBOX 2>/dev/null | sed -n 's/.*messages=\([0-9]*\).*/\1/p')
	echo "${n:-0}"
}

# lmtp_fill NAME ADDR MBOX CONNS COUNT: LMTP delivery of COUNT messages to bench1000; prints
# the messages delivered.
lmtp_fill() {
	local out=$OUT/fill-$1.json rc=0
	"$LB" lmtp --addr "$2" --mbox "$3" --conns "$4" --accounts 1 --user-format "$BIG_FORMAT" \
		--domain "$DOMAIN" --count "$5" --duration "$FILL_LIMIT" --json >"$out" || rc=$?
	[ "$rc" -le 1 ] || { log "fill $1 failed to run (status $rc)"; return 1; }
	local n
	n=$(json "$out" messages)
	log "fill $1: $n of $5 messages in $(json "$out" seconds) s ($(json "$out" msgs_per_sec) msgs/s, $(json "$out" errors) errors)"
	echo "$n"
}

# (a) Dovecot, and its two mailboxes.
start_dovecot 11143 11024
if [[ ",$PARTS," == *,resync,* || ",$PARTS," == *,search,* ]]; then
	have=$(dovecot_count "$BIG_USER")
	if [ "$have" -lt "$BIG" ]; then
		# Dovecot's maildir delivery slows down as the mailbox grows: top up, never refill.
		# Messages beyond BIG (left by an interrupted imap-sync) are removed by loftbench --expect.
		log "Dovecot's $BIG_USER holds $have messages: topping up to $BIG with new Message-IDs"
		small_mbox $((BIG - have)) "$BIG_USER" $((have + 1)) "topup$(date +%s)" >"$TMP/topup.mbox"
		lmtp_fill dovecot-topup "$DOVECOT_LMTP" "$TMP/topup.mbox" 4 $((BIG - have)) >/dev/null
	fi
	log "Dovecot's $BIG_USER holds $(dovecot_count "$BIG_USER") messages"
fi
if [[ ",$PARTS," == *,search,* || ",$PARTS," == *,compress,* ]]; then
	have=$(dovecot_count "$STD_USER")
	if [ "$have" != "$STD_SIZE" ]; then
		log "Dovecot's $STD_USER holds $have messages: emptying it and delivering the standard set"
		doveadm -c "$DOVECOT_CONF" expunge -u "$STD_USER" mailbox INBOX all 2>/dev/null || true
		"$LB" fill --addr "$DOVECOT_LMTP" --mbox "$MBOX" --rcpt "$STD_USER@$DOMAIN" >&2
	fi
	log "Dovecot's $STD_USER holds $(dovecot_count "$STD_USER") messages"
fi

# (b) Loft, from a temp dir, on its own data or on LOFT_DATA.
LOFT_IMAP_PORT=$(free_port 13143)
LOFT_LMTP_PORT=$(free_port 13624)
LOFT_IMAP=127.0.0.1:$LOFT_IMAP_PORT
LOFT_LMTP=127.0.0.1:$LOFT_LMTP_PORT
CFG=$TMP/loft.toml
cat >"$CFG" <<-EOF
	hostname = "localhost"
	domains  = ["$DOMAIN"]
	data_dir = "${LOFT_DATA:-$TMP/data}"

	[listen]
	smtp  = ""
	lmtp  = "$LOFT_LMTP"
	imap  = "$LOFT_IMAP"
	imaps = ""
	pop3  = ""
	pop3s = ""

	[quota]
	default = "unlimited"
EOF
if [ -z "${LOFT_DATA:-}" ]; then
	add_accounts "$CFG" "$STD_USER@$DOMAIN" "$BIG_USER@$DOMAIN"
	start_loft "$CFG" "$LOFT_LOG" "$LOFT_IMAP_PORT" "$LOFT_LMTP_PORT"
	log "filling $STD_USER with the standard set: Loft"
	"$LB" fill --addr "$LOFT_LMTP" --mbox "$MBOX" --rcpt "$STD_USER@$DOMAIN" >&2
	log "filling $BIG_USER with $BIG small messages: Loft"
	small_mbox "$BIG" "$BIG_USER" >"$TMP/small.mbox"
	n=$(lmtp_fill loft-big "$LOFT_LMTP" "$TMP/small.mbox" 16 "$BIG")
	[ "$n" = "$BIG" ] || log "WARNING: Loft's $BIG_USER holds $n messages, Dovecot's $BIG"
	rm -f "$TMP/small.mbox"

	# Loft adds the full text of new mail to its index when a search asks for it (the
	# indexer shares the writer with deliveries): one search starts it, then wait for it.
	log "waiting for Loft's text indexer (at most $INDEX_LIMIT s)"
	python3 - "$LOFT_IMAP_PORT" "$TMP/data/loft.db" "$INDEX_LIMIT" "$STD_USER@$DOMAIN" "$BIG_USER@$DOMAIN" <<-'EOF' >&2
		import imaplib, sqlite3, sys, time
		port, db, limit, users = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4:]
		for u in users:
		    M = imaplib.IMAP4("127.0.0.1", port)
		    M.login(u, "pass")
		    M.select("INBOX", readonly=True)
		    M.uid("SEARCH", None, 'TEXT "loftbench-kick"')
		    M.logout()
		con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
		t0 = time.time()
		while True:
		    n = con.execute("SELECT count(*) FROM body_index WHERE indexed = 0").fetchone()[0]
		    if n == 0:
		        print("imap-sync.sh: text index complete after %.0f s" % (time.time() - t0))
		        break
		    if time.time() - t0 > limit:
		        print("imap-sync.sh: WARNING: %d bodies not in the text index after %.0f s" % (n, limit))
		        break
		    time.sleep(2)
	EOF
	stop_loft
fi
prof=()
[ "$PROFILE" = 1 ] && prof=(--cpuprofile "$OUT/loft-sync.cpu")
start_loft "$CFG" "$LOFT_LOG" "$LOFT_IMAP_PORT" "$LOFT_LMTP_PORT" -- "${prof[@]}"

# (c) The parts, Dovecot then Loft for each.
log "load average before the measurements: $(cut -d' ' -f1-3 /proc/loadavg)"
for part in ${PARTS//,/ }; do
	for s in dovecot loft; do
		addr=$DOVECOT_IMAP
		[ $s = loft ] && addr=$LOFT_IMAP
		"$LB" imap-sync --addr "$addr" --user "$BIG_USER@$DOMAIN" --std-user "$STD_USER@$DOMAIN" \
			--parts "$part" --rounds "$ROUNDS" --expect "$BIG" --json >"$OUT/sync-$part-$s.json" ||
			{ log "imap-sync $part against $s failed (status $?)"; exit 1; }
		log "$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(sys.argv[2], "load", j["load_before"], "->", j["load_after"], "; ".join("%s: best %.2f ms, %d bytes, %s" % (s["command"], 1000 * s["best"], s["wire_bytes"], s.get("detail", "")) for s in j["steps"]))' "$OUT/sync-$part-$s.json" $s)"
	done
done
stop_loft

# (d) The tables.
python3 - "$OUT" "$PARTS" "$ROUNDS" <<-'EOF'
	import json, os, sys, time
	out, parts, rounds = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
	def ms(v):
	    return "%.1f" % (1000 * v) if v >= 0.01 else "%.2f" % (1000 * v)
	def ratio(a, b):
	    return "%.2f" % (a / b) if b else "-"
	loads = []
	print()
	print("IMAP sync, search and compression, Dovecot vs Loft, %d CPUs, %s. Times in ms: best / median of %s "
	      "after an untimed first run; ratio: Dovecot's time over Loft's (> 1: Loft faster)." % (os.cpu_count(), time.strftime("%Y-%m-%d", time.gmtime()), rounds))
	print()
	print("| measurement | Dovecot | Loft | ratio |")
	print("|---|---:|---:|---:|")
	for part in parts:
	    p = {s: "%s/sync-%s-%s.json" % (out, part, s) for s in ("dovecot", "loft")}
	    if not all(os.path.exists(f) for f in p.values()):
	        continue
	    d, l = (json.load(open(p[s])) for s in ("dovecot", "loft"))
	    loads += [d["load_before"], d["load_after"], l["load_before"], l["load_after"]]
	    for sd, sl in zip(d["steps"], l["steps"]):
	        what = "%s msgs: `%s`" % (sl["exists"], sl["command"]) if sd["exists"] == sl["exists"] else \
	            "%s (Dovecot) / %s (Loft) msgs: `%s`" % (sd["exists"], sl["exists"], sl["command"])
	        if part == "compress":
	            if not sd["seconds"]:
	                print("| %s: bytes on the wire | %s | %d | - |" % (what, sd.get("detail", "-"), sl["wire_bytes"]))
	                continue
	            print("| %s: bytes on the wire (inflated) | %d (%d) | %d (%d) | %s |" % (what, sd["wire_bytes"], sd["plain_bytes"],
	                sl["wire_bytes"], sl["plain_bytes"], ratio(sd["wire_bytes"], sl["wire_bytes"])))
	            print("| ↳ time, ms | %s / %s | %s / %s | %s |" % (ms(sd["best"]), ms(sd["median"]), ms(sl["best"]), ms(sl["median"]), ratio(sd["best"], sl["best"])))
	            continue
	        print("| %s: ms | %s / %s | %s / %s | %s |" % (what, ms(sd["best"]), ms(sd["median"]), ms(sl["best"]), ms(sl["median"]), ratio(sd["best"], sl["best"])))
	        if part == "resync":
	            print("| ↳ bytes of the response (%s) | %d | %d | %s |" % (sl["detail"], sd["wire_bytes"], sl["wire_bytes"], ratio(sd["wire_bytes"], sl["wire_bytes"])))
	        else:
	            print("| ↳ first run after EXAMINE, ms (%s) | %s | %s | %s |" % (sl["detail"], ms(sd["first"]), ms(sl["first"]), ratio(sd["first"], sl["first"])))
	        if sd["results"] != sl["results"] and part == "search":
	            print("| ↳ results differ: Dovecot %s | | | |" % sd["detail"])
	print()
	print("Load average (1, 5, 15 min) before and after each run: " + "; ".join(loads) + ".")
EOF
if [ "$PROFILE" = 1 ] && [ -s "$OUT/loft-sync.cpu" ]; then
	go tool pprof -top -nodecount=40 "$OUT/loft-sync.cpu" >"$OUT/loft-sync.top" 2>/dev/null || true
	echo
	echo "Top of Loft's profile (go tool pprof -top; full list in $OUT/loft-sync.top):"
	echo
	sed -n '/flat%/,$p' "$OUT/loft-sync.top" | sed -n '1,16p' | sed 's/^/    /'
fi
log "results in $OUT"
# (e) cleanup (trap) stops both servers.
