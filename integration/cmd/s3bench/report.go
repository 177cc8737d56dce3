package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Jobs, in table order.
const (
	jobSeqRead     = "1. sequential read, 1 thread"
	jobParRead     = "2. sequential read, 4 threads"
	jobRandRead    = "3. random read, 256 KiB blocks"
	jobSeqWrite    = "4. sequential write, fsync on close (until in S3)"
	jobSmallCreate = "5a. small files: create 64 KiB each (until in S3)"
	jobSmallRead   = "5b. small files: read back"
	jobList        = "6. ls -l of a directory, fresh mount"
	jobTTFB        = "7. time to first byte, fresh mount"
	jobPeakRSS     = "8. peak RSS over jobs 1-4"
)

var jobOrder = []string{jobSeqRead, jobParRead, jobRandRead, jobSeqWrite, jobSmallCreate, jobSmallRead, jobList, jobTTFB, jobPeakRSS}

// units and whether higher is better.
var jobUnit = map[string]struct {
	unit   string
	higher bool
}{
	jobSeqRead: {"MiB/s", true}, jobParRead: {"MiB/s", true}, jobRandRead: {"MiB/s", true}, jobSeqWrite: {"MiB/s", true},
	jobSmallCreate: {"files/s", true}, jobSmallRead: {"files/s", true}, jobList: {"s", false}, jobTTFB: {"ms", false},
	jobPeakRSS: {"MiB", false},
}

var columns = []string{"s3mount", "s3fs", "rclone (cache off)", "rclone (cache writes)", "ceiling"}

type cell struct {
	Samples []float64 `json:"samples,omitempty"`
	Fail    string    `json:"fail,omitempty"`
	Note    string    `json:"note,omitempty"`
}

type results struct {
	mu       sync.Mutex
	Date     string                      `json:"date"`
	Machine  string                      `json:"machine"`
	Versions map[string]string           `json:"versions"`
	Smoke    bool                        `json:"smoke"`
	Took     string                      `json:"took"`
	Cells    map[string]map[string]*cell `json:"cells"`   // job → column → cell
	Skipped  map[string]string           `json:"skipped"` // column → reason
}

func newResults() *results {
	return &results{Cells: map[string]map[string]*cell{}, Skipped: map[string]string{}}
}

func (r *results) cell(job, col string) *cell {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Cells[job] == nil {
		r.Cells[job] = map[string]*cell{}
	}
	if r.Cells[job][col] == nil {
		r.Cells[job][col] = &cell{}
	}
	return r.Cells[job][col]
}

func (r *results) set(job, col string, samples []float64) { r.cell(job, col).Samples = samples }
func (r *results) add(job, col string, v float64) {
	c := r.cell(job, col)
	c.Samples = append(c.Samples, v)
}
func (r *results) fail(job, col string, err error) { r.cell(job, col).Fail = err.Error() }
func (r *results) note(job, col, note string)      { r.cell(job, col).Note = note }
func (r *results) skip(col, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Skipped[col] = reason
}

// peak records a peak RSS sample, keeping the maximum.
func (r *results) peak(col string, mib float64) {
	c := r.cell(jobPeakRSS, col)
	if len(c.Samples) == 0 || mib > c.Samples[0] {
		c.Samples = []float64{mib}
	}
}

// value returns a cell's median, or false.
func (r *results) value(job, col string) (float64, bool) {
	c := r.Cells[job][col]
	if c == nil || c.Fail != "" || len(c.Samples) == 0 {
		return 0, false
	}
	return median(c.Samples), true
}

func (r *results) render(job, col string) string {
	if reason, ok := r.Skipped[col]; ok && col != "ceiling" {
		_ = reason
		return "n/a"
	}
	c := r.Cells[job][col]
	switch {
	case c == nil:
		return "—"
	case c.Fail != "":
		return "FAIL: " + strings.ReplaceAll(truncate(c.Fail, 80), "|", "/")
	}
	s := fmt.Sprintf("%.1f", median(c.Samples))
	if len(c.Samples) > 1 {
		lo, hi := c.Samples[0], c.Samples[0]
		for _, v := range c.Samples {
			lo, hi = min(lo, v), max(hi, v)
		}
		s += fmt.Sprintf(" (%.1f–%.1f)", lo, hi)
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// markdown renders the table, with s3mount's ratio to the ceiling and to the best peer.
func (r *results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s on %s (%s)%s.\n\n", r.Date, r.Machine, r.Took, map[bool]string{true: ", SMOKE SIZES", false: ""}[r.Smoke])
	fmt.Fprintf(&b, "| job | unit | %s | s3mount ÷ ceiling | s3mount vs best peer |\n|%s\n", strings.Join(columns, " | "), strings.Repeat(" --- |", len(columns)+4))
	for _, job := range jobOrder {
		u := jobUnit[job]
		row := []string{job, u.unit}
		for _, col := range columns {
			row = append(row, r.render(job, col))
		}
		row = append(row, r.ratioToCeiling(job), r.ratioToPeers(job))
		fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
	}
	var notes []string
	for _, job := range jobOrder {
		for _, col := range columns {
			if c := r.Cells[job][col]; c != nil && c.Note != "" {
				notes = append(notes, fmt.Sprintf("- %s, %s: %s", job, col, c.Note))
			}
		}
	}
	for col, reason := range r.Skipped {
		notes = append(notes, fmt.Sprintf("- %s not measured: %s", col, reason))
	}
	sort.Strings(notes)
	if len(notes) > 0 {
		b.WriteString("\n" + strings.Join(notes, "\n") + "\n")
	}
	return b.String()
}

func (r *results) ratioToCeiling(job string) string {
	s, ok1 := r.value(job, "s3mount")
	c, ok2 := r.value(job, "ceiling")
	if !ok1 || !ok2 || c == 0 || s == 0 {
		return "—"
	}
	if jobUnit[job].higher {
		return fmt.Sprintf("%.2f×", s/c)
	}
	return fmt.Sprintf("%.2f× the time", s/c)
}

// ratioToPeers is how many times better s3mount is than the best peer (>1 is better).
func (r *results) ratioToPeers(job string) string {
	s, ok := r.value(job, "s3mount")
	if !ok || s == 0 {
		return "—"
	}
	best, found := 0.0, false
	for _, col := range columns[1:4] {
		v, ok := r.value(job, col)
		if !ok || v == 0 {
			continue
		}
		if !found || (jobUnit[job].higher && v > best) || (!jobUnit[job].higher && v < best) {
			best, found = v, true
		}
	}
	if !found {
		return "—"
	}
	if jobUnit[job].higher {
		return fmt.Sprintf("%.2f×", s/best)
	}
	return fmt.Sprintf("%.2f×", best/s)
}

// write saves results.json, results.md and the charts.
func (r *results) write(dir string) error {
	data, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "results.json"), data, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	if err := r.chart(filepath.Join(dir, "throughput.png"), "Throughput (MiB/s, higher is better)", []string{jobSeqRead, jobParRead, jobRandRead, jobSeqWrite}); err != nil {
		return err
	}
	return r.chart(filepath.Join(dir, "latency.png"), "Latency and metadata (lower is better; ms, s, MiB)", []string{jobList, jobTTFB, jobPeakRSS})
}

var palette = []color.RGBA{{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255}, {127, 127, 127, 255}}

// chart draws grouped bars: one group per job, one bar per column.
func (r *results) chart(path, title string, jobs []string) error {
	p := plot.New()
	p.Title.Text = title
	p.Legend.Top = true
	width := vg.Points(14)
	for i, col := range columns {
		vals := make(plotter.Values, len(jobs))
		for j, job := range jobs {
			vals[j], _ = r.value(job, col)
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return err
		}
		bars.Color = palette[i%len(palette)]
		bars.LineStyle.Width = 0
		bars.Offset = vg.Length(i-len(columns)/2) * width
		p.Add(bars)
		p.Legend.Add(col, bars)
	}
	names := make([]string, len(jobs))
	for i, j := range jobs {
		names[i] = strings.SplitN(j, ",", 2)[0]
	}
	p.NominalX(names...)
	return p.Save(vg.Length(9)*vg.Inch, 5*vg.Inch, path)
}
