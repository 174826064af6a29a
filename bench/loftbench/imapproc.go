// This file reads what the IMAP benchmarks measure outside the protocol, from Linux's /proc
// and getrusage: the CPU time of loftbench itself (so that a report shows the client was not
// the limit), of a server's process tree, of the whole machine, and the proportional set size
// (PSS) of server processes, which splits shared pages fairly between the processes that map
// them and so can be summed over Dovecot's one-process-per-session model.

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat and /proc/stat: 100 on
// every Linux architecture Go supports (the kernel fixes it for user space).
const clockTicks = 100

// selfCPU returns the CPU time (user + system) loftbench has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hostCPU returns the machine's busy and total CPU time so far, in clock ticks summed over
// all CPUs (the "cpu" line of /proc/stat; idle and iowait count as not busy).
func hostCPU() (busy, total int64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, s := range f[1:] {
		if i >= 8 { // guest times are already counted in user and nice
			break
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %v", err)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}

// procInfo is what /proc/PID/stat says about one process.
type procInfo struct {
	pid, ppid int
	comm      string
	// cpu is the process's own user+system time plus that of its children it has waited
	// for (cutime, cstime), in clock ticks.
	cpu int64
}

// readProc parses /proc/PID/stat.
func readProc(pid int) (procInfo, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, err
	}
	// "PID (comm) S PPID ..."; comm may hold spaces and parentheses, so cut at the last ')'.
	open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return procInfo{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(data[end+1:]))
	// f[0] is field 3 (state); ppid is field 4, utime..cstime fields 14..17.
	if len(f) < 15 {
		return procInfo{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	p := procInfo{pid: pid, comm: string(data[open+1 : end])}
	p.ppid, _ = strconv.Atoi(f[1])
	for _, s := range f[11:15] {
		n, _ := strconv.ParseInt(s, 10, 64)
		p.cpu += n
	}
	return p, nil
}

// processTree returns root and every process descended from it.
func processTree(root int) ([]procInfo, error) {
	top, err := readProc(root)
	if err != nil {
		return nil, err
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]procInfo{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == root {
			continue
		}
		p, err := readProc(pid)
		if err != nil {
			continue // it exited meanwhile
		}
		children[p.ppid] = append(children[p.ppid], p)
	}
	tree := []procInfo{top}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i].pid]...)
	}
	return tree, nil
}

// treeCPU returns the CPU time used so far by root and its descendants, those that have
// exited and been waited for included (they are in their parent's cutime and cstime; a
// server's master waits for its children), so the difference of two calls is the tree's CPU
// time in between.
func treeCPU(root int) (time.Duration, error) {
	tree, err := processTree(root)
	if err != nil {
		return 0, err
	}
	var ticks int64
	for _, p := range tree {
		ticks += p.cpu
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// pss returns the proportional set size of one process in KiB, from /proc/PID/smaps_rollup
// (Linux 4.14 and later).
func pss(pid int) (memUse, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"))
	if err != nil {
		return memUse{}, err
	}
	defer f.Close()
	var m memUse
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "Pss" && name != "Pss_Anon") {
			continue
		}
		kb, _ := strings.CutSuffix(strings.TrimSpace(rest), " kB")
		v, err := strconv.ParseInt(strings.TrimSpace(kb), 10, 64)
		if err != nil {
			return memUse{}, fmt.Errorf("/proc/%d/smaps_rollup: %s: %w", pid, name, err)
		}
		if name == "Pss" {
			m.PSS, found = v, true
		} else {
			m.Anon = v
		}
	}
	if err := sc.Err(); err != nil {
		return memUse{}, err
	}
	if !found {
		return memUse{}, fmt.Errorf("/proc/%d/smaps_rollup: no Pss line", pid)
	}
	return m, nil
}

// memUse is a process's proportional set size and its anonymous part (KiB): the rest is
// file pages (the binary, and for Loft the database pages SQLite maps), shared with the page
// cache and reclaimable, which say nothing of what a session costs.
type memUse struct {
	PSS, Anon int64
}

// serverPSS sums the PSS (KiB) of the server's processes: the process pid itself when comm
// is empty (Loft: one process), else every process of pid's tree whose command name is comm
// (Dovecot: its "imap" processes, one per session). It also returns how many were summed.
func serverPSS(pid int, comm string) (kb memUse, procs int, err error) {
	if comm == "" {
		kb, err = pss(pid)
		return kb, 1, err
	}
	tree, err := processTree(pid)
	if err != nil {
		return memUse{}, 0, err
	}
	for _, p := range tree {
		if p.comm != comm {
			continue
		}
		n, err := pss(p.pid)
		if err != nil {
			continue // the session ended meanwhile
		}
		kb.PSS += n.PSS
		kb.Anon += n.Anon
		procs++
	}
	return kb, procs, nil
}
