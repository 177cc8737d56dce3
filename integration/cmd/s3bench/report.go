package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// markdown renders the run: what was measured where, the table, failures, notes and diagnostics.
// The caller holds r.mu.
func (r *results) markdown() string {
	var b strings.Builder
	kind := "full run"
	if r.Smoke {
		kind = "SMOKE RUN (tiny sizes: the numbers mean nothing)"
	}
	fmt.Fprintf(&b, "# s3bench results, profile %s: %s\n\n", r.Profile, kind)
	fmt.Fprintf(&b, "- Network: %s\n", r.Network)
	fmt.Fprintf(&b, "- Date: %s; this profile's pass took %s\n", r.Date, r.Took)
	fmt.Fprintf(&b, "- Machine: %s\n", r.machineLine())
	b.WriteString("- Versions:\n")
	for _, k := range sortedKeys(r.Versions) {
		fmt.Fprintf(&b, "  - %s: %s\n", k, r.Versions[k])
	}
	b.WriteString("- Mounted as:\n")
	for _, k := range sortedKeys(r.Options) {
		fmt.Fprintf(&b, "  - %s: `%s`\n", k, r.Options[k])
	}
	b.WriteString("\n")
	b.WriteString(r.table())
	b.WriteString(r.cpuTable())
	if f := r.failures(); f != "" {
		b.WriteString("\nFailures (full reasons):\n\n" + f)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range r.Notes {
			b.WriteString("- " + n + "\n")
		}
	}
	if len(r.Diag) > 0 {
		b.WriteString("\nDiagnostics (direct SDK calls, for reading the table):\n\n")
		for _, n := range r.Diag {
			b.WriteString("- " + n + "\n")
		}
	}
	return b.String()
}

func (r *results) machineLine() string {
	var parts []string
	for _, k := range []string{"cores", "memory", "cpu", "kernel"} {
		if v := r.Machine[k]; v != "" {
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, ", ")
}

func sortedKeys(m map[string]string) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

// table is the markdown table: rows are jobs; a cell is the median (lowest–highest) of its runs.
func (r *results) table() string {
	var b strings.Builder
	head := append([]string{"job", "unit"}, r.Columns...)
	head = append(head, "s3mount vs ceiling", "s3mount vs best peer", "floor vs ceiling")
	b.WriteString("| " + strings.Join(head, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat(" --- |", len(head)) + "\n")
	for _, rw := range r.Rows {
		cells := []string{rw.Label, rw.Unit}
		for _, col := range r.Columns {
			cells = append(cells, r.render(rw.ID, col))
		}
		cells = append(cells, r.ratioToCeiling(rw, colS3mount), r.ratioToPeers(rw), r.ratioToCeiling(rw, colFloor))
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	b.WriteString("\nA cell is the median of the runs with the lowest and highest in brackets. The ratios are\n" +
		"speed ratios: above 1× s3mount is faster (or, for time and memory rows, needs less); below 1× it\n" +
		"is slower. \"Best peer\" is the best of s3fs and both rclone modes on that row. The FUSE floor is a\n" +
		"go-fuse filesystem that stores nothing (integration/cmd/nullfs): \"floor vs ceiling\" is the most\n" +
		"that any mount built on go-fuse can reach against the ceiling on this machine (its writes are\n" +
		"timed until the writer returned: nothing goes to S3).\n")
	return b.String()
}

// render is one cell of the table.
func (r *results) render(rowID, col string) string {
	c := r.Cells[rowID][col]
	switch {
	case c == nil:
		return "—"
	case c.Fail != "":
		return "FAIL: " + cleanCell(c.Fail, 60)
	case len(c.Samples) == 0 && c.Skip != "":
		return "n/a (" + cleanCell(c.Skip, 40) + ")"
	case len(c.Samples) == 0:
		return "—"
	}
	s := num(median(c.Samples))
	if len(c.Samples) > 1 {
		lo, hi := spread(c.Samples)
		s += fmt.Sprintf(" (%s–%s)", num(lo), num(hi))
	}
	return s
}

// cleanCell makes a reason fit a table cell: one line, no pipes, at most n characters.
func cleanCell(s string, n int) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "|", "/")), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// num formats a measurement with three significant digits or so.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// speedRatio is how many times better s3mount's value is than other's (>1: s3mount is better).
func speedRatio(rw row, s3mount, other float64) float64 {
	if rw.Higher {
		return s3mount / other
	}
	return other / s3mount
}

func ratio(v float64) string {
	if v >= 10 {
		return fmt.Sprintf("%.0f×", v)
	}
	if v >= 0.1 {
		return fmt.Sprintf("%.2f×", v)
	}
	return fmt.Sprintf("%.3f×", v)
}

// ratioToCeiling is col's speed ratio to the ceiling on row rw.
func (r *results) ratioToCeiling(rw row, col string) string {
	s, ok1 := r.value(rw.ID, col)
	c, ok2 := r.value(rw.ID, colCeiling)
	if !ok1 || !ok2 || s <= 0 || c <= 0 {
		return "—"
	}
	return ratio(speedRatio(rw, s, c))
}

func (r *results) ratioToPeers(rw row) string {
	s, ok := r.value(rw.ID, colS3mount)
	if !ok || s <= 0 {
		return "—"
	}
	best, bestCol := 0.0, ""
	for _, col := range peerColumns {
		v, ok := r.value(rw.ID, col)
		if !ok || v <= 0 {
			continue
		}
		if bestCol == "" || (rw.Higher && v > best) || (!rw.Higher && v < best) {
			best, bestCol = v, col
		}
	}
	if bestCol == "" {
		return "—"
	}
	return fmt.Sprintf("%s (%s)", ratio(speedRatio(rw, s, best)), bestCol)
}

// failures lists every failed cell with its whole reason.
func (r *results) failures() string {
	var b strings.Builder
	for _, rw := range r.Rows {
		for _, col := range r.Columns {
			if c := r.Cells[rw.ID][col]; c != nil && c.Fail != "" {
				fmt.Fprintf(&b, "- %s, %s: %s\n", rw.Label, col, strings.Join(strings.Fields(c.Fail), " "))
			}
		}
	}
	return b.String()
}

// cpuTable is the machine's CPU per unit of work on the throughput rows, with how busy the cores
// were, and the bound it sets (see cpu.go). A mount needs the CPU of the ceiling, which keeps the
// cores busy a share u of the time, and besides that the CPU of the program that reads or writes
// through it (fio's own, in the kernel's FUSE and page-cache code mostly), which the ceiling does
// not have: against the ceiling it reaches at most ceiling / (u × (ceiling + program)). The
// program's CPU is taken from the floor, where nothing else competes with it.
func (r *results) cpuTable() string {
	if len(r.CPU) == 0 || r.Cores == 0 {
		return ""
	}
	var b strings.Builder
	head := append([]string{"job", "machine CPU"}, r.Columns...)
	head = append(head, "fio's own CPU on the floor", "most a mount can reach vs ceiling", "s3mount vs ceiling")
	b.WriteString("\nMachine CPU (all processes and the kernel, " + fmt.Sprint(r.Cores) + " cores) per unit of work: median, and in brackets\n" +
		"how busy the cores were.\n\n")
	b.WriteString("| " + strings.Join(head, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat(" --- |", len(head)) + "\n")
	for _, rw := range r.Rows {
		u, ok := r.CPUUnits[rw.ID]
		if !ok || len(r.CPU[rw.ID]) == 0 {
			continue
		}
		cells := []string{rw.Label, u.Unit}
		for _, col := range r.Columns {
			cells = append(cells, r.renderCPU(rw.ID, col))
		}
		prog := "—"
		if _, _, p, ok := r.cpuOf(rw.ID, colFloor); ok && p > 0 {
			prog = num(p)
		}
		cells = append(cells, prog, r.cpuBound(rw.ID), r.ratioToCeiling(rw, colS3mount))
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	b.WriteString("\nA mount does what the ceiling does (MinIO serves or stores the bytes, HTTP carries them) and,\n" +
		"besides, the program using it reads or writes them through the kernel's FUSE and page cache, on\n" +
		"the same cores. That program's own CPU, measured through the floor, sets the bound: at most\n" +
		"ceiling / (busy × (ceiling + program)) as fast as the ceiling, from the medians above.\n")
	return b.String()
}

// cpuOf is the median machine CPU per unit, the median share of the cores busy and the median CPU
// of the program that did the work per unit (0 if not measured), for one cell.
func (r *results) cpuOf(rowID, col string) (perUnit, busy, program float64, ok bool) {
	s := r.CPU[rowID][col]
	u := r.CPUUnits[rowID]
	if len(s) == 0 || u.Amount <= 0 {
		return 0, 0, 0, false
	}
	var per, share, prog []float64
	for _, x := range s {
		per = append(per, x.Busy/u.Amount)
		if x.Wall > 0 {
			share = append(share, x.Busy/(x.Wall*float64(r.Cores)))
		}
		if x.HasProg {
			prog = append(prog, x.Program/u.Amount)
		}
	}
	return median(per), median(share), median(prog), true
}

func (r *results) renderCPU(rowID, col string) string {
	per, busy, _, ok := r.cpuOf(rowID, col)
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%s (%.0f%%)", num(per), 100*busy)
}

// cpuBound is the most a mount can reach against the ceiling on a row: the ceiling's CPU and the
// CPU of the program using the mount, on cores the ceiling keeps busy.
func (r *results) cpuBound(rowID string) string {
	c, u, _, ok1 := r.cpuOf(rowID, colCeiling)
	_, _, p, ok2 := r.cpuOf(rowID, colFloor)
	if !ok1 || !ok2 || c <= 0 || u <= 0 || p <= 0 {
		return "—"
	}
	return ratio(c / (u * (c + p)))
}
