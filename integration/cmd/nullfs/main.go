// Command nullfs is the benchmark's FUSE floor: a go-fuse filesystem, mounted with s3mount's FUSE
// settings, that stores nothing. Reads of its files return bytes from memory, written with
// writev(2) as s3mount's replies are; writes are counted and discarded; new files and directories
// exist in memory only. What it reaches on a machine is what FUSE alone allows there: no mount
// built on go-fuse can read or write faster, whatever it does for storage (docs/PERFORMANCE.md).
//
//	nullfs [-file PATH=BYTES]... MOUNTPOINT
//
// It runs in the foreground until unmounted, or until SIGTERM or SIGINT unmounts it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	s3fs "github.com/s3mount/s3mount/fs"
)

// content is what every read returns, 1 MiB (the largest read FUSE sends).
var content = make([]byte, 1<<20)

// dir is a directory in memory; new children are added to the tree, where go-fuse's own lookup
// finds them.
type dir struct{ fusefs.Inode }

var (
	_ = (fusefs.NodeMkdirer)((*dir)(nil))
	_ = (fusefs.NodeCreater)((*dir)(nil))
)

func (d *dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if d.GetChild(name) != nil {
		return nil, syscall.EEXIST
	}
	ch := d.NewPersistentInode(ctx, &dir{}, fusefs.StableAttr{Mode: syscall.S_IFDIR})
	d.AddChild(name, ch, true)
	out.Mode = syscall.S_IFDIR | 0o755
	return ch, 0
}

func (d *dir) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	f := &file{}
	ch := d.NewPersistentInode(ctx, f, fusefs.StableAttr{Mode: syscall.S_IFREG})
	d.AddChild(name, ch, true)
	f.fill(&out.Attr)
	return ch, nil, 0, 0
}

// file has a size and no content: reads return content's bytes.
type file struct {
	fusefs.Inode
	size atomic.Int64
}

var (
	_ = (fusefs.NodeGetattrer)((*file)(nil))
	_ = (fusefs.NodeSetattrer)((*file)(nil))
	_ = (fusefs.NodeOpener)((*file)(nil))
	_ = (fusefs.NodeReader)((*file)(nil))
	_ = (fusefs.NodeWriter)((*file)(nil))
	_ = (fusefs.NodeFlusher)((*file)(nil))
	_ = (fusefs.NodeFsyncer)((*file)(nil))
)

func (f *file) fill(a *fuse.Attr) {
	a.Mode = syscall.S_IFREG | 0o644
	a.Size = uint64(f.size.Load())
}

func (f *file) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.fill(&out.Attr)
	return 0
}

func (f *file) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		f.size.Store(int64(sz))
	}
	f.fill(&out.Attr)
	return 0
}

func (f *file) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		f.size.Store(0)
	}
	return nil, 0, 0
}

func (f *file) Read(ctx context.Context, fh fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n := max(0, min(int64(len(dest)), int64(len(content)), f.size.Load()-off))
	// Written with writev(2) straight from memory, as s3mount's replies are; fuse.ReadResultData
	// would first try splice(2) and copy.
	return fuse.ReadResultVector([][]byte{content[:n]}), 0
}

func (f *file) Write(ctx context.Context, fh fusefs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	end := off + int64(len(data))
	for {
		old := f.size.Load()
		if end <= old || f.size.CompareAndSwap(old, end) {
			return uint32(len(data)), 0
		}
	}
}

func (f *file) Flush(ctx context.Context, fh fusefs.FileHandle) syscall.Errno { return 0 }

func (f *file) Fsync(ctx context.Context, fh fusefs.FileHandle, flags uint32) syscall.Errno {
	return 0
}

// files is the -file flag: PATH=BYTES, repeatable.
type files map[string]int64

func (f files) String() string { return fmt.Sprint(map[string]int64(f)) }

func (f files) Set(s string) error {
	p, n, ok := strings.Cut(s, "=")
	size, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || size < 0 || path.Clean(p) != p || strings.HasPrefix(p, "/") || p == "." {
		return fmt.Errorf("want PATH=BYTES with a relative PATH, got %q", s)
	}
	f[p] = size
	return nil
}

// root adds the -file files (and their directories) when mounted.
type root struct {
	dir
	files files
}

func (r *root) OnAdd(ctx context.Context) {
	for p, size := range r.files {
		parent := &r.Inode
		parts := strings.Split(p, "/")
		for _, name := range parts[:len(parts)-1] {
			ch := parent.GetChild(name)
			if ch == nil {
				ch = parent.NewPersistentInode(ctx, &dir{}, fusefs.StableAttr{Mode: syscall.S_IFDIR})
				parent.AddChild(name, ch, true)
			}
			parent = ch
		}
		f := &file{}
		f.size.Store(size)
		parent.AddChild(parts[len(parts)-1], parent.NewPersistentInode(ctx, f, fusefs.StableAttr{Mode: syscall.S_IFREG}), true)
	}
}

func main() {
	fl := files{}
	flag.Var(fl, "file", "a file to show, PATH=BYTES (repeatable)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: nullfs [-file PATH=BYTES]... MOUNTPOINT\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	mnt := flag.Arg(0)
	// s3mount's FUSE settings, its default kernel read-ahead included.
	readahead := s3fs.DefaultOptions().KernelReadahead
	opts := &fusefs.Options{MountOptions: s3fs.FUSESettings(readahead)}
	opts.FsName, opts.Name = "nullfs", "nullfs"
	srv, err := fusefs.Mount(mnt, &root{files: fl}, opts)
	if err != nil {
		log.Fatalf("nullfs: %v", err)
	}
	if err := s3fs.SetKernelReadahead(mnt, readahead); err != nil {
		log.Printf("nullfs: kernel read-ahead left at its default: %v", err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		if err := srv.Unmount(); err != nil {
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	}()
	srv.Wait()
}
