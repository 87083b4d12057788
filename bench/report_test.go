package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report is what one make bench run measured.
type report struct {
	Machine  machine
	Started  time.Time
	Command  string
	Rounds   int
	GenTime  time.Duration
	Kernel   []kernelRun
	Delivery []deliveryRun
	// Loaded is set when the 1-minute load average at the start was
	// above MaxLoad: rates then say little, CPU per record a little more.
	Loaded  bool
	MaxLoad float64
}

type machine struct {
	CPUs                  int
	Model, Kernel, Go     string
	Auditd                string
	LoadBefore, LoadAfter string
	Load1                 float64 // the 1-minute load average at the start
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadAverage()}
	if f := strings.Fields(m.LoadBefore); len(f) > 0 {
		m.Load1, _ = strconv.ParseFloat(f[0], 64)
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "auditd").Output(); err == nil {
		m.Auditd = string(out)
	}
	return m
}

func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// stats are the median, minimum and maximum of some figures.
type stats struct{ Med, Min, Max float64 }

func summarize(v []float64) stats {
	if len(v) == 0 {
		return stats{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{med, s[0], s[len(s)-1]}
}

func (s stats) format(f string) string {
	return fmt.Sprintf(f+" ("+f+"–"+f+")", s.Med, s.Min, s.Max)
}

// against is the ratio a/b in bold with its target and whether it is met:
// at least lim, or at most lim when atMost.
func against(a, b, lim float64, atMost bool) string {
	if b == 0 || a == 0 {
		return "n/a"
	}
	r := a / b
	op, met, short := "≥", r >= lim, 1-r/lim
	if atMost {
		op, met, short = "≤", r <= lim, r/lim-1
	}
	v := "met"
	if !met {
		v = fmt.Sprintf("missed by %.1f%%", short*100)
	}
	return fmt.Sprintf("**%.2f** (target %s %g: %s)", r, op, lim, v)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func (r *report) markdown() string {
	var w bytes.Buffer
	m := r.Machine
	if r.Loaded {
		fmt.Fprintf(&w, "**LOADED**: the 1-minute load average was %.2f at the start, above %.2f. Rates depend on what else ran; "+
			"CPU per record depends on it less, but batches grow when the reader falls behind. These figures are not the summary's.\n\n", m.Load1, r.MaxLoad)
	}
	fmt.Fprintf(&w, "Run %s with `%s`: %d rounds, sides alternating (order rotated each round). ", r.Started.Format("2006-01-02 15:04 UTC"), r.Command, r.Rounds)
	fmt.Fprintf(&w, "Machine: %d CPUs (%s), Linux %s, %s, auditd %s; load average %s before, %s after.\n", m.CPUs, m.Model, m.Kernel, m.Go, m.Auditd, m.LoadBefore, m.LoadAfter)
	if len(r.Kernel) > 0 {
		r.kernelMarkdown(&w)
	}
	if len(r.Delivery) > 0 {
		r.deliveryMarkdown(&w)
	}
	return w.String()
}

func (r *report) kernelMarkdown(w *bytes.Buffer) {
	fmt.Fprintf(w, "\n### Kernel path\n\n")
	fmt.Fprintf(w, "bench/cmd/loadgen calls uname(2) for %s under `-a always,exit -F arch=b64 -S uname -F exe=LOADGEN -k bench` "+
		"(backlog_limit %d, backlog_wait_time %d jiffies). Readers: the real `auditd -n` (private auditd.conf: RAW log, "+
		"flush INCREMENTAL_ASYNC, freq 50, priority_boost 4), auditd-ns (the same settings, no containers) and bench/cmd/bareloop "+
		"(read and discard). Each call is one event of three kernel records (SYSCALL, PROCTITLE, EOE); "+
		"\"records per run\" counts log lines, and auditd does not write EOE records, so it logs two lines per event to auditd-ns's three. "+
		"CPU is the reader's utime+stime from /proc/PID/stat over the run, per 100k events (audited syscalls) in its log.\n\n", r.GenTime, backlogLimit, backlogWaitTime)
	fmt.Fprintf(w, "| reader | generator syscalls/s, median (min–max) | records per run, median | kernel lost, total | reader CPU s per 100k events, median (min–max) | failed runs |\n|---|---|---|---|---|---|\n")
	med := map[string]stats{}
	cpu := map[string]stats{}
	sides := slices.Clone(kernelSides)
	for _, k := range r.Kernel {
		if !slices.Contains(sides, k.Side) {
			sides = append(sides, k.Side)
		}
	}
	for _, side := range sides {
		var rates, recs, cpus []float64
		var lost int64
		failed := 0
		for _, k := range r.Kernel {
			if k.Side != side {
				continue
			}
			if k.Err != "" {
				failed++
				continue
			}
			rates = append(rates, k.rate())
			recs = append(recs, float64(k.Records))
			cpus = append(cpus, k.cpuPer100k())
			lost += k.Lost
		}
		med[side], cpu[side] = summarize(rates), summarize(cpus)
		fmt.Fprintf(w, "| %s | %s | %.0f | %d | %s | %d |\n", side, med[side].format("%.0f"), summarize(recs).Med, lost, cpu[side].format("%.2f"), failed)
	}
	r.generatorMarkdown(w, sides)
	fmt.Fprintf(w, "\nRatios of medians (targets from issues 18 and 21): generator rate auditd-ns/bare-batch %s, "+
		"auditd-ns/bare %s, auditd-ns/auditd %s; CPU per event auditd-ns/auditd %s, auditd-ns/bare-batch %s.\n",
		against(med["auditd-ns"].Med, med["bare-batch"].Med, 0.95, false), ratio(med["auditd-ns"].Med, med["bare"].Med),
		against(med["auditd-ns"].Med, med["auditd"].Med, 1.5, false),
		against(cpu["auditd-ns"].Med, cpu["auditd"].Med, 0.45, true), ratio(cpu["auditd-ns"].Med, cpu["bare-batch"].Med))
	rate := func(k kernelRun) float64 { return k.rate() }
	cpuOf := func(k kernelRun) float64 { return k.cpuPer100k() }
	fmt.Fprintf(w, "\nThe same ratios taken within each round, then the median (min–max) over rounds, which is steadier when "+
		"the machine's load drifts: rate auditd-ns/bare-batch %s, auditd-ns/auditd %s; CPU auditd-ns/auditd %s",
		paired(r.Kernel, "auditd-ns", "bare-batch", rate), paired(r.Kernel, "auditd-ns", "auditd", rate), paired(r.Kernel, "auditd-ns", "auditd", cpuOf))
	if ts := tenantSides(); len(sides) > len(kernelSides) && len(ts) == 2 {
		fmt.Fprintf(w, "; rate %s/auditd-ns %s, stalled/not stalled %s; CPU %s/auditd %s", ts[0], paired(r.Kernel, ts[0], "auditd-ns", rate),
			paired(r.Kernel, ts[1], ts[0], rate), ts[0], paired(r.Kernel, ts[0], "auditd", cpuOf))
	}
	if slices.Contains(sides, "auditd-ns-base") {
		fmt.Fprintf(w, "; this tree against the earlier build (-basebin): rate auditd-ns/auditd-ns-base %s, CPU %s",
			paired(r.Kernel, "auditd-ns", "auditd-ns-base", rate), paired(r.Kernel, "auditd-ns", "auditd-ns-base", cpuOf))
	}
	fmt.Fprintf(w, ".\n")
	if ts := tenantSides(); len(sides) > len(kernelSides) && len(ts) == 2 {
		var dropped, peak, overflow, unattributed int64
		for _, k := range r.Kernel {
			if k.Side == ts[0] {
				dropped += k.Dropped
				peak = max(peak, k.Peak)
				overflow += max(k.Overflow, 0)
				unattributed += max(k.Unattributed, 0)
			}
		}
		fmt.Fprintf(w, "\nWith %d registered containers (cgroup attribution, a file target each, the default memory queue, "+
			"the generator in the first): generator rate %s/auditd-ns %s; CPU per event %s/auditd %s. "+
			"The first container's file target got %s of the events (median (min–max)) and its queue dropped **%d** copies in all "+
			"(target 0); the router left **%d** records unrouted in all (its overflow: more than 262,144 records behind, they "+
			"reach the host log but no container, and every tenant is told how many; target 0) and attributed %d events to no container. Isolation, the first container's target a TCP peer that never reads: generator rate stalled/not stalled %s "+
			"(not the same work: the stalled queue fills and then drops, while the file target writes every copy). "+
			"The largest burst the first container's file target fell behind by: %.1f MiB of copies in its queue (most of any run).\n",
			*containers, ts[0], against(med[ts[0]].Med, med["auditd-ns"].Med, 0.9, false),
			ts[0], against(cpu[ts[0]].Med, cpu["auditd"].Med, 0.6, true), copiesShare(r.Kernel, ts[0]).format("%.1f%%"), dropped, overflow, unattributed,
			against(med[ts[1]].Med, med[ts[0]].Med, 0.98, false), float64(peak)/(1<<20))
	}
	fmt.Fprintf(w, "\n<details><summary>Every run</summary>\n\n| round | reader | calls | seconds | syscalls/s | events logged | records (lines) | lost | CPU s | events in the first container's file | its queue dropped | its queue's peak, KiB | router overflow (records not routed) | events attributed to no container | generator CPU s | generator waited for a CPU, s | generator slept, s | backlog wait, jiffies | error |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, k := range r.Kernel {
		fmt.Fprintf(w, "| %d | %s | %d | %.2f | %.0f | %d | %d | %d | %.2f | %d | %d | %d | %s | %s | %.2f | %.2f | %.2f | %d | %s |\n", k.Round, k.Side, k.Calls, k.Seconds, k.rate(), k.Syscalls, k.Records, k.Lost, k.CPU, k.Copies, k.Dropped, k.Peak>>10,
			tenantCount(k, k.Overflow), tenantCount(k, k.Unattributed), k.GenCPU, k.GenRunDelay, k.GenSlept, k.BacklogWait, k.Err)
	}
	fmt.Fprintf(w, "\n</details>\n")
}

func (r *report) deliveryMarkdown(w *bytes.Buffer) {
	fmt.Fprintf(w, "\n### Delivery\n\n")
	fmt.Fprintf(w, "The recorded corpus (test/corpus/kernel-records.log.gz, %d lines) repeated, sent to a fresh real "+
		"auditd (`local_events = no`, loopback TCP, in a private mount namespace) per run: %d records by audisp-remote (format managed, "+
		"mode immediate) fed on stdin, and %d by pkg/remote's Sender (window %d) from a pkg/queue memory queue filled beforehand. A run ends when audisp-remote exits "+
		"after its input or when the Sender has every ack; each run's auditd log is checked to hold every record. CPU is "+
		"audisp-remote's own (rusage of the child) and this process's for the Sender; the receiving auditd's CPU is its whole "+
		"life (rusage), and its busy share is that over the run's time.\n\n", corpusLines, *audispN, *records, senderWindow)
	fmt.Fprintf(w, "| sender | records/s, median (min–max) | sender CPU µs per record, median | receiving auditd CPU µs per record, median | receiving auditd busy, median | failed runs |\n|---|---|---|---|---|---|\n")
	med := map[string]stats{}
	for _, side := range deliverySides {
		var rates, cpus, recv, busy []float64
		failed := 0
		for _, d := range r.Delivery {
			if d.Side != side {
				continue
			}
			if d.Err != "" {
				failed++
				continue
			}
			rates = append(rates, float64(d.Records)/d.Seconds)
			cpus = append(cpus, d.CPU/float64(d.Records)*1e6)
			recv = append(recv, d.RecvCPU/float64(d.Records)*1e6)
			busy = append(busy, d.RecvCPU/d.Seconds*100)
		}
		med[side] = summarize(rates)
		fmt.Fprintf(w, "| %s | %s | %.1f | %.1f | %.0f%% | %d |\n", side, med[side].format("%.0f"), summarize(cpus).Med, summarize(recv).Med, summarize(busy).Med, failed)
	}
	limit := 0.0
	if recv := senderRecvCPU(r.Delivery); recv > 0 {
		limit = 1e6 / recv
	}
	fmt.Fprintf(w, "\nThe receiving auditd's one-core intake limit, 1 s over its median CPU per record in the Sender runs: "+
		"**%.0f records/s**. Sender/that limit %s; Sender CPU per record %s µs (target ≤ 2); Sender/audisp-remote %s.\n",
		limit, against(med["sender"].Med, limit, 0.9, false), senderCPU(r.Delivery), ratio(med["sender"].Med, med["audisp-remote"].Med))
	fmt.Fprintf(w, "\n<details><summary>Every run</summary>\n\n| round | sender | records | seconds | records/s | logged | sender CPU s | auditd CPU s | error |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, d := range r.Delivery {
		fmt.Fprintf(w, "| %d | %s | %d | %.2f | %.0f | %d | %.2f | %.2f | %s |\n", d.Round, d.Side, d.Records, d.Seconds, float64(d.Records)/d.Seconds, d.Logged, d.CPU, d.RecvCPU, d.Err)
	}
	fmt.Fprintf(w, "\n</details>\n")
}

// The sections of docs/BENCHMARKS.md that make bench rewrites: the last
// run on a quiet machine, and the last on a loaded one.
const (
	beginMarker = "<!-- make bench: begin -->"
	endMarker   = "<!-- make bench: end -->"
	loadedBegin = "<!-- make bench loaded: begin -->"
	loadedEnd   = "<!-- make bench loaded: end -->"
)

// replaceSection rewrites what lies between the markers in path.
func replaceSection(path, beginMarker, endMarker, md string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	s := string(b)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("writing the report: %s has no %q … %q section", path, beginMarker, endMarker)
	}
	s = s[:i+len(beginMarker)] + "\n" + md + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}

// senderRecvCPU is the median of the receiving auditd's CPU µs per record
// in the Sender's runs.
func senderRecvCPU(runs []deliveryRun) float64 {
	var v []float64
	for _, d := range runs {
		if d.Side == "sender" && d.Err == "" {
			v = append(v, d.RecvCPU/float64(d.Records)*1e6)
		}
	}
	return summarize(v).Med
}

// senderCPU is the median (min–max) of the Sender's CPU µs per record.
func senderCPU(runs []deliveryRun) string {
	var v []float64
	for _, d := range runs {
		if d.Side == "sender" && d.Err == "" {
			v = append(v, d.CPU/float64(d.Records)*1e6)
		}
	}
	return summarize(v).format("%.2f")
}

// copiesShare is the share, in percent, of a side's events that reached
// the first container's file target, over its runs.
func copiesShare(runs []kernelRun, side string) stats {
	var v []float64
	for _, k := range runs {
		if k.Side == side && k.Err == "" && k.Syscalls > 0 {
			v = append(v, float64(k.Copies)/float64(k.Syscalls)*100)
		}
	}
	return summarize(v)
}

// tenantCount prints a figure of a tenant side's daemon: empty for the
// other sides, "?" when the daemon did not answer (-1).
func tenantCount(k kernelRun, n int64) string {
	switch {
	case !strings.HasPrefix(k.Side, "auditd-ns-") || k.Side == "auditd-ns-base":
		return ""
	case n < 0:
		return "?"
	}
	return strconv.FormatInt(n, 10)
}

// paired is the median (min–max) over rounds of f(side a)/f(side b)
// within the same round.
func paired(runs []kernelRun, a, b string, f func(kernelRun) float64) string {
	by := map[int]map[string]kernelRun{}
	for _, k := range runs {
		if k.Err != "" {
			continue
		}
		if by[k.Round] == nil {
			by[k.Round] = map[string]kernelRun{}
		}
		by[k.Round][k.Side] = k
	}
	var v []float64
	for _, m := range by {
		ka, oka := m[a]
		kb, okb := m[b]
		if oka && okb && f(kb) != 0 {
			v = append(v, f(ka)/f(kb))
		}
	}
	if len(v) == 0 {
		return "n/a"
	}
	return summarize(v).format("%.2f")
}

// generatorMarkdown says, per side, what kept the generator from calling
// faster: its own CPU per call, the time it waited for a CPU, and the time
// it slept (on the kernel's full audit backlog: backlog_wait_time_actual).
func (r *report) generatorMarkdown(w *bytes.Buffer, sides []string) {
	fmt.Fprintf(w, "\nWhere the generator's time went, from its own thread's accounts (bench/cmd/loadgen: schedstat and "+
		"getrusage), medians over rounds: its CPU per call (the kernel's audit work for the call included), the share of "+
		"its run it waited for a CPU, the share it slept, and the time audited tasks slept on the kernel's full backlog "+
		"(the rise of backlog_wait_time_actual, %d jiffies a second).\n\n", jiffiesPerSecond)
	fmt.Fprintf(w, "| reader | generator CPU µs per call | waited for a CPU | slept | backlog wait, s per run (min–max) | preempted per 1000 calls |\n|---|---|---|---|---|---|\n")
	for _, side := range sides {
		var cpu, delay, slept, bw, pre []float64
		for _, k := range r.Kernel {
			if k.Side != side || k.Err != "" || k.Calls == 0 || k.Seconds == 0 {
				continue
			}
			cpu = append(cpu, k.GenCPU/float64(k.Calls)*1e6)
			delay = append(delay, k.GenRunDelay/k.Seconds*100)
			slept = append(slept, k.GenSlept/k.Seconds*100)
			bw = append(bw, float64(k.BacklogWait)/jiffiesPerSecond)
			pre = append(pre, float64(k.GenPreempted)/float64(k.Calls)*1000)
		}
		if len(cpu) == 0 {
			continue // a side this run left out
		}
		fmt.Fprintf(w, "| %s | %.2f | %.0f%% | %.0f%% | %s | %.1f |\n", side, summarize(cpu).Med, summarize(delay).Med, summarize(slept).Med,
			summarize(bw).format("%.2f"), summarize(pre).Med)
	}
}

// jiffiesPerSecond is the kernel's HZ, the unit of backlog_wait_time:
// CONFIG_HZ_250 on this machine's kernel.
const jiffiesPerSecond = 250
