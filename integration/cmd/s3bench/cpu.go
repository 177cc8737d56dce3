package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Machine CPU. The ceiling keeps both cores busy on the throughput jobs, so a mount, which must
// do what the ceiling does (MinIO's serving, the HTTP transfer) and, besides, serve a program that
// reads or writes through the kernel's FUSE and page cache, can only be as fast as the CPU left
// allows. Each measurement of those jobs records the CPU time the whole machine spent in it (every
// process and the kernel, from /proc/stat), fio's own and, for the log, the filesystem's and
// MinIO's; the report derives the bound from the medians (cpuTable).

// cpuRows are the rows whose CPU is reported, with the amount of work one measurement does.
func (b *bench) cpuRows() map[string]cpuUnit {
	sz := b.sz
	return map[string]cpuUnit{
		rowSeqRead:  {float64(sz.SeqFile) / (1 << 30), "s/GiB"},
		rowParRead:  {float64(4*sz.ParFile) / (1 << 30), "s/GiB"},
		rowWriteS3:  {float64(sz.WriteFile) / (1 << 30), "s/GiB"},
		rowCreateS3: {float64(sz.SmallFiles) / 1000, "s/1,000 files"},
	}
}

type cpuUnit struct {
	Amount float64 `json:"amount"` // units of work in one measurement
	Unit   string  `json:"unit"`   // CPU seconds per what
}

// cpuSample is the CPU one measurement used: busy CPU seconds of the machine, and its wall time;
// the memory the kernel had to reclaim for it (page cache taken back by the processes that needed
// memory, and by kswapd), in MiB; and the memory it moved to make room for huge pages.
type cpuSample struct {
	Busy      float64 `json:"busy_s"`
	Wall      float64 `json:"wall_s"`
	Program   float64 `json:"program_s,omitempty"` // fio's own CPU, when fio did the work
	Steal     float64 `json:"steal_s"`             // of Busy, the time the host gave the cores to others
	HasProg   bool    `json:"has_program,omitempty"`
	DirectMiB float64 `json:"direct_reclaim_mib"`
	KswapdMiB float64 `json:"kswapd_reclaim_mib"`
	// MigratedMiB is the memory the kernel moved (compaction, by kcompactd or by processes that
	// wanted a huge page: CompactStalls times).
	MigratedMiB   float64 `json:"migrated_mib"`
	CompactStalls float64 `json:"compact_stalls"`
	// ReturnedMiB is the free memory the kernel handed back to the host meanwhile (free page
	// reporting, where the virtual machine has it): touching it again costs the host's page faults.
	ReturnedMiB float64 `json:"returned_to_host_mib"`
	// FS and MinIO are the CPU seconds of the filesystem's process (0 for the ceiling, which runs
	// in the bench's own) and of MinIO.
	FS    float64 `json:"fs_s,omitempty"`
	FSSys float64 `json:"fs_sys_s,omitempty"` // of FS, in the kernel
	MinIO float64 `json:"minio_s,omitempty"`
	// FSFaults are the filesystem process's minor page faults: on this virtual machine a first
	// touch of memory the host took back is dear.
	FSFaults float64 `json:"fs_faults,omitempty"`
}

// processCPU returns the user and system CPU seconds of process pid so far, of them the system
// seconds, and its minor page faults; or zeros.
func processCPU(pid int) (cpu, sys, faults float64) {
	if pid <= 0 {
		return 0, 0, 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // the name may hold spaces
	if len(f) < 13 {
		return 0, 0, 0
	}
	minflt, _ := strconv.ParseFloat(f[7], 64)
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100, stime / 100, minflt // USER_HZ
}

// memEvents are counters since boot: from /proc/vmstat the pages reclaimed directly by allocating
// processes and by kswapd, and pages migrated, in MiB, and compaction stalls; and the free memory
// reported to the host (this virtual machine's page_reporting module), in MiB.
type memEvents struct{ direct, kswapd, migrated, stalls, returned float64 }

// reportedKiB is where this machine's kernel counts the memory it gave back to the host.
const reportedKiB = "/sys/module/page_reporting/parameters/reported_kib"

func readMemEvents() (e memEvents) {
	if data, err := os.ReadFile(reportedKiB); err == nil {
		kib, _ := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
		e.returned = kib / 1024
	}
	data, err := os.ReadFile("/proc/vmstat")
	if err != nil {
		return e
	}
	const mib = 4096.0 / (1 << 20)
	for _, line := range strings.Split(string(data), "\n") {
		name, v, ok := strings.Cut(line, " ")
		n, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil {
			continue
		}
		switch name {
		case "pgsteal_direct":
			e.direct += n * mib
		case "pgsteal_kswapd":
			e.kswapd += n * mib
		case "pgmigrate_success":
			e.migrated += n * mib
		case "compact_stall":
			e.stalls += n
		}
	}
	return e
}

// machineBusy returns the busy CPU seconds of the whole machine since boot (all cores; everything
// but idle and iowait), and of those the time the host gave the cores to others (steal).
func machineBusy() (busy, steal float64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %v", err)
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
		if i == 7 {
			steal = v
		}
	}
	return busy / 100, steal / 100, nil // USER_HZ
}

// meter measures one interval of a measurement: the whole attempt, or, on a mount, only the work
// done on it (onMount), so that starting and stopping the filesystem does not count.
type meter struct {
	busy0, steal0   float64
	mem0            memEvents
	fsPid, minioPid int // processes whose own CPU is recorded (0: none)
	fs0, minio0     float64
	fsSys0          float64
	faults0         float64
	began           time.Time
	less            float64 // CPU seconds to leave out (fio's own start, see calibrateFio)
	prog            float64 // CPU seconds of the program that did the work (fio), if hasProg
	hasProg         bool
	sample          *cpuSample
}

type meterKey struct{}

func withMeter(ctx context.Context, m *meter) context.Context {
	return context.WithValue(ctx, meterKey{}, m)
}

func meterFrom(ctx context.Context) *meter {
	m, _ := ctx.Value(meterKey{}).(*meter)
	return m
}

func (m *meter) begin() {
	if m == nil {
		return
	}
	m.busy0, m.steal0, _ = machineBusy()
	m.mem0 = readMemEvents()
	m.fs0, m.fsSys0, m.faults0 = processCPU(m.fsPid)
	m.minio0, _, _ = processCPU(m.minioPid)
	m.began = time.Now()
	m.less, m.prog, m.hasProg = 0, 0, false
}

// program records the CPU of the program that did the work, fio (its start left out).
func (m *meter) program(s float64) {
	if m != nil {
		m.prog += s
		m.hasProg = true
	}
}

// discount leaves s CPU seconds out of the interval under way.
func (m *meter) discount(s float64) {
	if m != nil {
		m.less += s
	}
}

func (m *meter) end() {
	if m == nil || m.began.IsZero() {
		return
	}
	busy, steal, err := machineBusy()
	if err != nil {
		return
	}
	e := readMemEvents()
	m.sample = &cpuSample{Busy: max(0, busy-m.busy0-m.less), Wall: time.Since(m.began).Seconds(),
		Program: m.prog, HasProg: m.hasProg, Steal: steal - m.steal0,
		DirectMiB: e.direct - m.mem0.direct, KswapdMiB: e.kswapd - m.mem0.kswapd,
		MigratedMiB: e.migrated - m.mem0.migrated, CompactStalls: e.stalls - m.mem0.stalls, ReturnedMiB: e.returned - m.mem0.returned}
	if m.fsPid > 0 {
		cpu, sys, faults := processCPU(m.fsPid)
		m.sample.FS, m.sample.FSSys, m.sample.FSFaults = cpu-m.fs0, sys-m.fsSys0, faults-m.faults0
	}
	if m.minioPid > 0 {
		cpu, _, _ := processCPU(m.minioPid)
		m.sample.MinIO = cpu - m.minio0
	}
}
