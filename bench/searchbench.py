#!/usr/bin/env python3
"""Time SEARCH, SORT and THREAD on a mailbox over IMAP (127.0.0.1 only).

Usage: searchbench.py PORT USER   (password "pass"; INBOX is selected read-only)
Prints the first run and the best of the next three of each command; see
docs/BENCHMARKS.md, "IMAP search and sort".
"""
import imaplib, time, sys
port, user = int(sys.argv[1]), sys.argv[2]
cmds = [("SEARCH", 'TEXT "postmortem"'), ("SEARCH", 'TEXT "invoice"'), ("SEARCH", 'BODY "uick bro"'),
        ("SEARCH", 'FROM "alice"'),
        ("SORT", '(DATE) UTF-8 ALL'), ("SORT", '(SUBJECT) UTF-8 ALL'),
        ("THREAD", 'REFERENCES UTF-8 ALL'), ("THREAD", 'ORDEREDSUBJECT UTF-8 ALL')]
M = imaplib.IMAP4("127.0.0.1", port)
M.login(user, "pass")
typ, data = M.select("INBOX", readonly=True)
print(user, "messages", data[0].decode())
for cmd, args in cmds:
    times = []
    n = None
    for i in range(4):
        t0 = time.perf_counter()
        typ, data = M.uid(cmd, *args.split(" ", 2)) if cmd != "SEARCH" else M.uid(cmd, None, args)
        times.append(time.perf_counter() - t0)
        if typ != "OK":
            print(cmd, args, typ, data); break
        if cmd != "THREAD":
            n = len(data[0].split())
    print(f"UID {cmd} {args:32} first {times[0]*1000:8.1f} ms  best {min(times[1:])*1000:8.1f} ms  results {n}")
M.logout()
