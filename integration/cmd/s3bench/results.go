package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// A row of the table: one number measured on every column (a job can fill several rows, e.g.
// a write timed until in S3 and until the writer returned).
type row struct {
	ID     string `json:"id"`
	Label  string `json:"label"`
	Unit   string `json:"unit"`
	Higher bool   `json:"higher_is_better"`
	// Chart is the chart the row is drawn in ("throughput" or "latency"), and the panel in it.
	Chart string `json:"chart"`
	Panel string `json:"panel"`
}

// Row IDs.
const (
	rowSeqRead       = "seq_read"
	rowParRead       = "seq_read_4t"
	rowRandRead      = "rand_read"
	rowWriteS3       = "seq_write_in_s3"
	rowWriteRet      = "seq_write_returned"
	rowCreateS3      = "small_create_in_s3"
	rowCreateRet     = "small_create_returned"
	rowSmallRead     = "small_read"
	rowList          = "ls_l"
	rowTTFB          = "ttfb"
	rowRSS           = "peak_rss"
	rowWritersS3     = "writers_in_s3"
	rowWritersRSS    = "writers_peak_rss"
	rowListLA        = "ls_l_listing_attrs" // job 6 with s3mount -o listing_attrs
	rowResticBackup  = "restic_backup"
	rowResticRestore = "restic_restore"
	rowTarX          = "tar_x"
	rowRsync         = "rsync"
	rowListScaleID   = "ls_l_%d" // s3mount-only scaling rows (listing_attrs), by object count
)

// Columns.
const (
	colS3mount = "s3mount"
	colS3fs    = "s3fs"
	colRcOff   = "rclone (cache off)"
	colRcWr    = "rclone (cache writes)"
	colCeiling = "ceiling (SDK)"
	// colFloor is a FUSE filesystem that stores nothing (integration/cmd/nullfs): what FUSE alone
	// allows on this machine, and so the most any mount built on go-fuse can reach here.
	colFloor = "FUSE floor (no storage)"
)

var peerColumns = []string{colS3fs, colRcOff, colRcWr}

// cell is one row × column: the samples, or why there are none.
type cell struct {
	Samples []float64 `json:"samples,omitempty"`
	Fail    string    `json:"fail,omitempty"` // the job failed: FAIL and the reason
	Skip    string    `json:"skip,omitempty"` // not run on purpose (not installed, no time)
}

// results is everything one run measured; it is written as results.json.
type results struct {
	mu       sync.Mutex
	Date     string                      `json:"date"`
	Took     string                      `json:"took"`
	Profile  string                      `json:"profile"` // the network profile (integration/shaper)
	Network  string                      `json:"network"` // what it does, in one line
	Smoke    bool                        `json:"smoke"`
	Machine  map[string]string           `json:"machine"`
	Versions map[string]string           `json:"versions"`
	Options  map[string]string           `json:"options"` // how each filesystem was mounted
	Sizes    sizes                       `json:"sizes"`
	Rows     []row                       `json:"rows"`
	Columns  []string                    `json:"columns"`
	Cells    map[string]map[string]*cell `json:"cells"` // row ID → column → cell
	// CPU is the machine's CPU per measurement of the rows in CPUUnits (see cpu.go).
	CPU      map[string]map[string][]cpuSample `json:"cpu,omitempty"`
	CPUUnits map[string]cpuUnit                `json:"cpu_units,omitempty"`
	Cores    int                               `json:"cores"`
	Notes    []string                          `json:"notes,omitempty"`
	// SweepWins counts, per row, the ceiling's repetitions each concurrency won.
	SweepWins map[string]map[int]int `json:"ceiling_sweep_wins,omitempty"`
	Diag      []string               `json:"diagnostics,omitempty"`
}

func newResults(rows []row, columns []string) *results {
	return &results{Rows: rows, Columns: columns, Cells: map[string]map[string]*cell{}, CPU: map[string]map[string][]cpuSample{},
		Machine: map[string]string{}, Versions: map[string]string{}, Options: map[string]string{}}
}

func (r *results) cellLocked(rowID, col string) *cell {
	if r.Cells[rowID] == nil {
		r.Cells[rowID] = map[string]*cell{}
	}
	if r.Cells[rowID][col] == nil {
		r.Cells[rowID][col] = &cell{}
	}
	return r.Cells[rowID][col]
}

// add appends a sample.
func (r *results) add(rowID, col string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.cellLocked(rowID, col)
	c.Samples = append(c.Samples, v)
}

// fail marks a cell failed (the first reason wins); its samples are dropped, since a median of
// the runs that happened to pass would flatter the filesystem.
func (r *results) fail(rowID, col, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.cellLocked(rowID, col)
	if c.Fail == "" {
		c.Fail = reason
	}
	c.Samples = nil
}

// skip marks a cell as not run on purpose.
func (r *results) skip(rowID, col, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.cellLocked(rowID, col)
	if c.Fail == "" && len(c.Samples) == 0 {
		c.Skip = reason
	}
}

// failed reports whether a cell has failed.
func (r *results) failed(rowID, col string) bool { return r.failReason(rowID, col) != "" }

// failReason is why a cell failed, or "".
func (r *results) failReason(rowID, col string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.Cells[rowID][col]; c != nil {
		return c.Fail
	}
	return ""
}

// maxSample keeps a single sample, the largest seen (peak RSS).
func (r *results) maxSample(rowID, col string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.cellLocked(rowID, col)
	if len(c.Samples) == 0 {
		c.Samples = []float64{v}
	} else if v > c.Samples[0] {
		c.Samples[0] = v
	}
}

// addCPU records the CPU of one measurement.
func (r *results) addCPU(rowID, col string, s cpuSample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.CPU[rowID] == nil {
		r.CPU[rowID] = map[string][]cpuSample{}
	}
	r.CPU[rowID][col] = append(r.CPU[rowID][col], s)
}

func (r *results) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Notes = append(r.Notes, s)
}

func (r *results) sweepWon(rowID string, conc int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.SweepWins == nil {
		r.SweepWins = map[string]map[int]int{}
	}
	if r.SweepWins[rowID] == nil {
		r.SweepWins[rowID] = map[int]int{}
	}
	r.SweepWins[rowID][conc]++
}

// sweepNotes says, per row, which concurrency gave the ceiling its best runs.
func (r *results) sweepNotes() {
	var parts []string
	r.mu.Lock()
	for _, rw := range r.Rows {
		wins := r.SweepWins[rw.ID]
		if len(wins) == 0 {
			continue
		}
		var cs []string
		for _, c := range sweepConcurrency {
			if n := wins[c]; n > 0 {
				cs = append(cs, fmt.Sprintf("%d in %d", c, n))
			}
		}
		parts = append(parts, fmt.Sprintf("%s: %s", rw.Label, strings.Join(cs, ", ")))
	}
	r.mu.Unlock()
	if len(parts) > 0 {
		r.note(fmt.Sprintf("The ceiling's concurrency sweep (%s parts in flight; each repetition's best is its sample) was won by: %s.",
			joinInts(sweepConcurrency), strings.Join(parts, "; ")))
	}
}

func joinInts(v []int) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprint(x))
	}
	return strings.Join(s, ", ")
}

// writeCombined writes every profile's report into one file, s3like first.
func writeCombined(path string, all []*results) error {
	var b strings.Builder
	sort.SliceStable(all, func(i, j int) bool { return all[i].Profile == "s3like" && all[j].Profile != "s3like" })
	for _, r := range all {
		r.mu.Lock()
		b.WriteString(r.markdown())
		r.mu.Unlock()
		b.WriteString("\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func (r *results) diag(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Diag = append(r.Diag, s)
}

// value is a cell's median, if it has samples and did not fail.
func (r *results) value(rowID, col string) (float64, bool) {
	c := r.Cells[rowID][col]
	if c == nil || c.Fail != "" || len(c.Samples) == 0 {
		return 0, false
	}
	return median(c.Samples), true
}

func (r *results) row(id string) (row, bool) {
	for _, x := range r.Rows {
		if x.ID == id {
			return x, true
		}
	}
	return row{}, false
}

// write saves results.json, results.md and the two charts in dir.
func (r *results) write(dir string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	if err := r.chart(filepath.Join(dir, "throughput.png"), "throughput",
		"Throughput: median of the runs, higher is better"); err != nil {
		return fmt.Errorf("throughput chart: %w", err)
	}
	if err := r.chart(filepath.Join(dir, "latency.png"), "latency",
		"Latency, metadata and memory: median of the runs, lower is better"); err != nil {
		return fmt.Errorf("latency chart: %w", err)
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(v []float64) (lo, hi float64) {
	lo, hi = v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}
