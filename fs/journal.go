package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/internal/safepath"
)

// journal records the multipart uploads this mount has started and not yet completed or aborted,
// one small file each, so that the next mount can abort what a crash (SIGKILL, power loss) left
// behind without touching uploads of other programs. Each mount process owns one directory,
// locked with flock while it runs; a directory whose lock is free belongs to a dead mount. Every
// file is made through checked directory handles (internal/safepath), never by path.
//
// It also records sweeps: a request that starts an upload can fail on the client (a timeout, a
// reset) and still be carried out by S3, so the mount never learns the upload's ID. A sweep names
// the key and the time window in which such uploads may have started; it is done (see sweep.go)
// once S3 answers, and by the next mount if this one ends first.
type journal struct {
	root *safepath.Dir // the journal directory; nil when journaling is off
	name string        // this process's directory in root
	dir  *safepath.Dir // that directory
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
	rd, err := safepath.MkdirAll(root)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	name := fmt.Sprintf("mount-%d-%d", os.Getpid(), time.Now().UnixNano())
	dir, err := rd.Mkdir(name)
	if err != nil {
		rd.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	lock, err := dir.Create("lock", os.O_RDWR, 0o600)
	if err == nil {
		if err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			lock.Close()
			err = fmt.Errorf("locking %s: %w", dir.Path(), err)
		}
	}
	if err != nil {
		dir.Close()
		rd.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &journal{root: rd, name: name, dir: dir, lock: lock, log: log, live: map[string]struct{}{}, creating: map[string]int{}}, nil
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
	if j.dir == nil {
		return
	}
	f, err := j.dir.OpenFile(entryName(key, id), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err == nil {
		_, err = f.WriteString(key + "\n" + id)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		j.log.Warn("journal: cannot record upload; a crash would leave it behind", "key", key, "err", err)
	}
}

// remove forgets an upload that was completed or aborted.
func (j *journal) remove(key, id string) {
	j.mu.Lock()
	delete(j.live, id)
	j.mu.Unlock()
	if j.dir != nil {
		_ = j.dir.Remove(entryName(key, id))
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
	if j.dir == nil {
		return ""
	}
	name := "sweep-" + entryName(key, fmt.Sprint(w.from.UnixNano()))[len("upload-"):]
	data := fmt.Sprintf("%s\n%d\n%d", key, w.from.UnixNano(), w.to.UnixNano())
	f, err := j.dir.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err == nil {
		_, err = f.WriteString(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		j.log.Warn("journal: cannot record a sweep; a crash would leave its uploads behind", "key", key, "err", err)
	}
	return name
}

// removeSweep forgets a sweep that was done.
func (j *journal) removeSweep(name string) {
	if j.dir != nil && name != "" {
		_ = j.dir.Remove(name)
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
// Adding after close fails (logged), removing still works.
func (j *journal) close() {
	if j.dir == nil {
		return
	}
	entries, _ := j.dir.ReadDirNames()
	removed := len(entries) <= 1
	if removed {
		_ = j.root.RemoveAll(j.name)
	}
	_ = j.lock.Close()
	if removed {
		_ = j.dir.Close()
		_ = j.root.Close()
	}
	// Otherwise uploads still in flight (their commits or aborts end after the unmount) may still
	// remove their entries: the handles stay open for them, and the next mount recovers the rest.
}

// recover aborts the uploads recorded by dead mounts under root and removes their directories.
// It returns how many uploads it aborted.
func recoverJournals(ctx context.Context, root string, b backend.Backend, log *slog.Logger) (int, error) {
	if root == "" {
		return 0, nil
	}
	rd, err := safepath.OpenDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	names, err := rd.ReadDirNames()
	if err != nil {
		return 0, err
	}
	aborted := 0
	for _, name := range names {
		if !strings.HasPrefix(name, "mount-") {
			continue
		}
		dir, err := rd.OpenSub(name)
		if err != nil {
			continue
		}
		n, clean := recoverJournal(ctx, dir, b, log)
		dir.Close()
		aborted += n
		if clean {
			_ = rd.RemoveAll(name)
		}
	}
	return aborted, nil
}

// recoverJournal aborts the uploads recorded in dir, the journal of one mount, unless that mount
// is alive (holds its lock). It returns how many it aborted and whether dir can be removed.
func recoverJournal(ctx context.Context, dir *safepath.Dir, b backend.Backend, log *slog.Logger) (aborted int, clean bool) {
	lock, err := dir.OpenFile("lock", os.O_RDWR, 0)
	if err != nil {
		return 0, true
	}
	defer lock.Close()
	if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return 0, false // a live mount owns it
	}
	names, _ := dir.ReadDirNames()
	clean = true
	for _, name := range names {
		if strings.HasPrefix(name, "sweep-") {
			data, err := dir.ReadFile(name)
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
		if !strings.HasPrefix(name, "upload-") {
			continue
		}
		data, err := dir.ReadFile(name)
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
	return aborted, clean
}
