package control

import (
	"bufio"
	"math"
	"sort"
	"strconv"
	"strings"
)

// expo writes the Prometheus text exposition format, version 0.0.4: a
// HELP and a TYPE line per family, then its samples.
type expo struct {
	w *bufio.Writer
}

type label struct{ name, value string }

func (e *expo) family(name, typ, help string) {
	e.w.WriteString("# HELP " + name + " " + escapeHelp(help) + "\n")
	e.w.WriteString("# TYPE " + name + " " + typ + "\n")
}

func (e *expo) sample(name string, v float64, labels ...label) {
	e.w.WriteString(name)
	if len(labels) > 0 {
		e.w.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				e.w.WriteByte(',')
			}
			e.w.WriteString(l.name + `="` + escapeLabel(l.value) + `"`)
		}
		e.w.WriteByte('}')
	}
	e.w.WriteByte(' ')
	e.w.WriteString(formatFloat(v))
	e.w.WriteByte('\n')
}

// one writes a family with a single sample.
func (e *expo) one(name, typ, help string, v float64) {
	e.family(name, typ, help)
	e.sample(name, v)
}

func (e *expo) histogram(name string, h Latency, labels ...label) {
	buckets := append([]Bucket(nil), h.Buckets...)
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].UpperBound < buckets[j].UpperBound })
	le := func(bound string) []label { return append(append([]label(nil), labels...), label{"le", bound}) }
	for _, b := range buckets {
		if !math.IsInf(b.UpperBound, +1) {
			e.sample(name+"_bucket", float64(b.Count), le(formatFloat(b.UpperBound))...)
		}
	}
	e.sample(name+"_bucket", float64(h.Count), le("+Inf")...)
	e.sample(name+"_sum", h.Sum, labels...)
	e.sample(name+"_count", float64(h.Count), labels...)
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
