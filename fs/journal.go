package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/s3mount/s3mount/fs/backend"
)

// journal records the multipart uploads this mount has started and not yet completed or aborted,
// one small file each, so that the next mount can abort what a crash (SIGKILL, power loss) left
// behind without touching uploads of other programs. Each mount process owns one directory,
// locked with flock while it runs; a directory whose lock is free belongs to a dead mount.
//
// It also records sweeps: a request that starts an upload can fail on the client (a timeout, a
// reset) and still be carried out by S3, so the mount never learns the upload's ID. A sweep names
// the key and the time window in which such uploads may have started; it is done (see sweep.go)
// once S3 answers, and by the next mount if this one ends first.
type journal struct {
	dir  string // this process's directory, "" when journaling is off
	lock *os.File
	log  *slog.Logger

	mu       sync.Mutex          // protects live and creating
	live     map[string]struct{} // IDs of the uploads recorded and not yet removed
	creating map[string]int      // keys with a CreateMultipartUpload in flight, and how many
}

// openJournal creates this mount's journal directory under root.
func openJournal(root string, log *slog.Logger) (*journal, error) {
	if root == "" {
		return &journal{log: log, live: map[string]struct{}{}, creating: map[string]int{}}, nil
	}
	dir := filepath.Join(root, fmt.Sprintf("mount-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("journal: locking %s: %w", dir, err)
	}
	return &journal{dir: dir, lock: lock, log: log, live: map[string]struct{}{}, creating: map[string]int{}}, nil
}

func entryName(key, id string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + id))
	return "upload-" + hex.EncodeToString(sum[:12])
}

// add records an upload that has been created.
func (j *journal) add(key, id string) {
	j.mu.Lock()
	j.live[id] = struct{}{}
	j.mu.Unlock()
	if j.dir == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(j.dir, entryName(key, id)), []byte(key+"\n"+id), 0o600); err != nil {
		j.log.Warn("journal: cannot record upload; a crash would leave it behind", "key", key, "err", err)
	}
}

// remove forgets an upload that was completed or aborted.
func (j *journal) remove(key, id string) {
	j.mu.Lock()
	delete(j.live, id)
	j.mu.Unlock()
	if j.dir != "" {
		_ = os.Remove(filepath.Join(j.dir, entryName(key, id)))
	}
}

// startCreate records that an upload of key is being created, until the returned function is
// called (after add): a sweep of key must not take it for an orphan meanwhile.
func (j *journal) startCreate(key string) func() {
	j.mu.Lock()
	j.creating[key]++
	j.mu.Unlock()
	return func() {
		j.mu.Lock()
		if j.creating[key]--; j.creating[key] == 0 {
			delete(j.creating, key)
		}
		j.mu.Unlock()
	}
}

// isCreating reports whether an upload of key is being created.
func (j *journal) isCreating(key string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.creating[key] > 0
}

// isLive reports whether id is an upload this mount started and still uses.
func (j *journal) isLive(id string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.live[id]
	return ok
}

// addSweep records a sweep of key's uploads started in [w.from, w.to] and returns its name.
func (j *journal) addSweep(key string, w window) string {
	if j.dir == "" {
		return ""
	}
	name := "sweep-" + entryName(key, fmt.Sprint(w.from.UnixNano()))[len("upload-"):]
	data := fmt.Sprintf("%s\n%d\n%d", key, w.from.UnixNano(), w.to.UnixNano())
	if err := os.WriteFile(filepath.Join(j.dir, name), []byte(data), 0o600); err != nil {
		j.log.Warn("journal: cannot record a sweep; a crash would leave its uploads behind", "key", key, "err", err)
	}
	return name
}

// removeSweep forgets a sweep that was done.
func (j *journal) removeSweep(name string) {
	if j.dir != "" && name != "" {
		_ = os.Remove(filepath.Join(j.dir, name))
	}
}

// readSweep parses a sweep entry.
func readSweep(data []byte) (key string, w window, ok bool) {
	parts := strings.Split(string(data), "\n")
	if len(parts) != 3 {
		return "", window{}, false
	}
	from, err1 := strconv.ParseInt(parts[1], 10, 64)
	to, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return "", window{}, false
	}
	return parts[0], window{time.Unix(0, from), time.Unix(0, to)}, true
}

// close removes this mount's journal directory; uploads still recorded are left for recovery.
func (j *journal) close() {
	if j.dir == "" {
		return
	}
	entries, _ := os.ReadDir(j.dir)
	if len(entries) <= 1 {
		_ = os.RemoveAll(j.dir)
	}
	_ = j.lock.Close()
}

// recover aborts the uploads recorded by dead mounts under root and removes their directories.
// It returns how many uploads it aborted.
func recoverJournals(ctx context.Context, root string, b backend.Backend, log *slog.Logger) (int, error) {
	if root == "" {
		return 0, nil
	}
	dirs, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	aborted := 0
	for _, d := range dirs {
		if !d.IsDir() || !strings.HasPrefix(d.Name(), "mount-") {
			continue
		}
		dir := filepath.Join(root, d.Name())
		lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
		if err != nil {
			_ = os.RemoveAll(dir)
			continue
		}
		if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			lock.Close() // a live mount owns it
			continue
		}
		entries, _ := os.ReadDir(dir)
		clean := true
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "sweep-") {
				data, err := os.ReadFile(filepath.Join(dir, e.Name()))
				key, w, ok := readSweep(data)
				if err != nil || !ok {
					continue
				}
				n, err := sweepUploads(ctx, b, key, w, func(string) bool { return false }, nil)
				aborted += n
				if err != nil {
					log.Warn("could not sweep the multipart uploads a crashed mount may have left", "key", key, "err", err)
					clean = clean && errors.Is(err, backend.ErrPermission) // not allowed: left to a lifecycle rule
				}
				if time.Now().Before(w.to) {
					clean = false // S3 may still carry out a request of the dead mount: sweep again later
				}
				continue
			}
			if !strings.HasPrefix(e.Name(), "upload-") {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			key, id, ok := strings.Cut(string(data), "\n")
			if err != nil || !ok {
				continue
			}
			if err := b.AbortUpload(ctx, key, id); err != nil {
				log.Warn("could not abort a multipart upload left by a crashed mount", "key", key, "err", err)
				clean = false
				continue
			}
			log.Info("aborted a multipart upload left by a crashed mount", "key", key)
			aborted++
		}
		lock.Close()
		if clean {
			_ = os.RemoveAll(dir)
		}
	}
	return aborted, nil
}
