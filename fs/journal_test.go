package fs

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/fs/backend/memback"
)

// TestJournalRecoversACrashedMount: the uploads a mount recorded and never finished are aborted
// by the next mount on the same journal directory, which leaves a live mount's journal alone
// and never follows a link planted in the journal directory.
func TestJournalRecoversACrashedMount(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := memback.New()
	root := filepath.Join(t.TempDir(), "journal")
	crashed, err := openJournal(root, log)
	if err != nil {
		t.Fatal(err)
	}
	up, err := b.NewUpload(ctx, "k", backend.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	crashed.add("k", up.ID())
	crashed.lock.Close() // the process died: its lock is free, its journal stays
	live, err := openJournal(root, log)
	if err != nil {
		t.Fatal(err)
	}
	defer live.close()
	victim := t.TempDir()
	os.Symlink(victim, filepath.Join(root, "mount-planted"))
	n, err := recoverJournals(ctx, root, b, log)
	if err != nil || n != 1 || b.PendingUploads() != 0 {
		t.Fatalf("aborted %d (%v), %d uploads pending; want 1 aborted, none pending", n, err, b.PendingUploads())
	}
	if _, err := os.Stat(filepath.Join(root, crashed.name)); !os.IsNotExist(err) {
		t.Errorf("the crashed mount's journal is still there (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(root, live.name, "lock")); err != nil {
		t.Errorf("the live mount's journal was touched: %v", err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("the planted link's target was touched: %v", err)
	}
}
