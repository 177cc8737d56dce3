// Package safepath opens the local directories s3mount writes (staging, journal, disk cache, the
// log file's directory) so that no other local user can redirect those writes, and checks the
// files s3mount reads (a config or credentials file) the same way.
//
// # The rule
//
// A path is safe for a process whose effective user is uid when every directory on the way to
// it, from /, is owned by uid or root and not writable by group or others, as ssh's StrictModes
// demands of ~/.ssh. A directory with the sticky bit (/tmp, /var/tmp) may be writable by others
// when it is not the last one: nobody else can rename or remove what uid or root made in it, so
// its entry must be owned by uid or root. A symbolic link on the way is followed only where it
// stands in such a directory (and, in a sticky one, is owned by uid or root): only uid or root
// could have put it there. The directory itself (the last component given to MkdirAll or
// OpenDir) must never be a symbolic link. For a file (CheckFile, OpenFile) its directory may be
// a sticky one, and the file must be a regular file, not a link, owned by uid or root.
//
// # Use
//
// s3mount's staging, journal and disk cache directories are opened with MkdirAll and every file
// under them is made through the Dir; the log file is opened with OpenFile; cmd/s3mount checks
// them all before mounting (exit code 15 for an *Error). A loader of a file that holds secrets
// (a config or credentials file) calls CheckFile, then checks the file's mode itself, or opens
// it with OpenFile(path, os.O_RDONLY, 0) and checks the mode with Stat on what it opened.
//
// # No race after the check
//
// The walk opens each directory relative to the one before it with O_NOFOLLOW and checks what
// it opened (fstat), so the check and the use are the same object. Dir is the open handle of a
// checked directory: everything below it is created relative to the handle with
// O_NOFOLLOW|O_EXCL (CreateTemp, Mkdir, OpenFile), so a rename or a symbolic link swapped in
// after the check cannot send a write elsewhere.
//
// A refusal is an *Error naming the path, what is wrong and the fix.
//
// The package imports neither go-fuse nor the AWS SDK. Each Dir has one lock (see Dir.mu); the
// package holds no other.
package safepath

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Error is a refusal of an unsafe path.
type Error struct {
	Path    string // the offending path (the given one, or the directory on its way)
	Problem string // what is wrong, e.g. "is writable by group or others (mode 0777)"
	Fix     string // what to do about it
}

func (e *Error) Error() string { return fmt.Sprintf("%s %s; %s", e.Path, e.Problem, e.Fix) }

// maxLinks bounds the symbolic links followed on one walk, as the kernel's 40.
const maxLinks = 40

// Dir is an open, checked directory. It is safe for concurrent use, and every method after Close
// fails with os.ErrClosed (never touching a descriptor number the process has reused).
type Dir struct {
	path string

	mu sync.RWMutex // held for reading while fd is in use; Close takes it for writing
	fd int          // -1 once closed
}

func newDir(fd int, path string) *Dir { return &Dir{fd: fd, path: path} }

// Path returns the path the directory was opened by (for messages; never for access).
func (d *Dir) Path() string { return d.path }

// do runs f with the directory's descriptor, which stays open meanwhile.
func (d *Dir) do(f func(fd int) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.fd < 0 {
		return &os.PathError{Op: "use", Path: d.path, Err: os.ErrClosed}
	}
	return f(d.fd)
}

// Close releases the handle; closing twice does nothing.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// Statfs reports on the filesystem that holds the directory.
func (d *Dir) Statfs(st *unix.Statfs_t) error {
	return d.do(func(fd int) error { return unix.Fstatfs(fd, st) })
}

// MkdirAll opens the directory path, creating it and any missing parents with mode 0700, after
// checking every directory on its way for the effective user (see the package doc).
func MkdirAll(path string) (*Dir, error) { return walk(path, true, false) }

// OpenDir opens the existing directory path after checking it as MkdirAll does.
func OpenDir(path string) (*Dir, error) { return walk(path, false, false) }

// CheckDir checks the existing directory path as OpenDir does, without keeping it open.
func CheckDir(path string) error {
	d, err := OpenDir(path)
	if err == nil {
		d.Close()
	}
	return err
}

// CheckFile checks a file s3mount reads or appends to: its directory is checked as CheckDir
// does (but may be a sticky directory like /tmp), and the file, if it exists, must not be a
// symbolic link, must be a regular file and must be owned by the effective user or root. For a
// file that holds secrets, check its mode as well.
func CheckFile(path string) error {
	d, err := walk(filepath.Dir(path), false, true)
	if err != nil {
		return err
	}
	defer d.Close()
	var st unix.Stat_t
	err = d.do(func(fd int) error { return unix.Fstatat(fd, filepath.Base(path), &st, unix.AT_SYMLINK_NOFOLLOW) })
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return &Error{path, "cannot be checked: " + err.Error(), "fix the path"}
	}
	return checkFileStat(path, &st)
}

func checkFileStat(path string, st *unix.Stat_t) error {
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return &Error{path, "is a symbolic link", "give the path of the file itself"}
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return &Error{path, "is not a regular file", "give the path of a regular file"}
	case !trustedOwner(st.Uid):
		return &Error{path, fmt.Sprintf("is owned by uid %d, not by uid %d or root", st.Uid, os.Geteuid()), fmt.Sprintf("remove it or chown %d %s", os.Geteuid(), path)}
	}
	return nil
}

// OpenFile opens the file at path for appending or reading after CheckFile's checks, relative to
// its checked directory and with O_NOFOLLOW; flag may include O_CREATE (a new file gets perm).
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	d, err := walk(filepath.Dir(path), false, true)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.openChecked(filepath.Base(path), path, flag, perm)
}

func (d *Dir) openChecked(name, path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := d.OpenFile(name, flag, perm)
	if errors.Is(err, unix.ELOOP) {
		return nil, &Error{path, "is a symbolic link", "give the path of the file itself"}
	}
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	if err := checkFileStat(path, &st); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// OpenFile opens name in d with O_NOFOLLOW (and O_CLOEXEC): a symbolic link there fails with
// ELOOP instead of being followed. With O_CREATE a new file gets perm.
func (d *Dir) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	if err := plainName(name); err != nil {
		return nil, err
	}
	var fd int
	err := d.do(func(dfd int) (err error) {
		fd, err = unix.Openat(dfd, name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(d.path, name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(d.path, name)), nil
}

// Create creates the new file name in d (O_CREAT|O_EXCL|O_NOFOLLOW): it fails if anything, a
// symbolic link included, is there already.
func (d *Dir) Create(name string, flag int, perm os.FileMode) (*os.File, error) {
	return d.OpenFile(name, flag|os.O_CREATE|os.O_EXCL, perm)
}

// CreateTemp creates a new file in d with a random name starting with prefix, mode 0600.
func (d *Dir) CreateTemp(prefix string) (*os.File, string, error) {
	for i := 0; ; i++ {
		name := prefix + randomSuffix()
		f, err := d.Create(name, os.O_RDWR, 0o600)
		if errors.Is(err, unix.EEXIST) && i < 100 {
			continue
		}
		return f, name, err
	}
}

// TempFile returns a new anonymous file in d (O_TMPFILE where the filesystem has it, else a
// file created and unlinked at once): nothing is left behind by a crash.
func (d *Dir) TempFile() (*os.File, error) {
	var fd int
	err := d.do(func(dfd int) (err error) {
		fd, err = unix.Openat(dfd, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err == nil {
		return os.NewFile(uintptr(fd), filepath.Join(d.path, "(anonymous)")), nil
	}
	f, name, err := d.CreateTemp("stage-")
	if err != nil {
		return nil, err
	}
	if err := d.Remove(name); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Mkdir opens the directory name in d, creating it with mode 0700 if missing; an existing one
// is checked as MkdirAll checks the last component.
func (d *Dir) Mkdir(name string) (*Dir, error) {
	if err := plainName(name); err != nil {
		return nil, err
	}
	return d.step(name, true, true)
}

// MkdirTemp creates a new directory in d with a random name starting with prefix, mode 0700.
func (d *Dir) MkdirTemp(prefix string) (*Dir, string, error) {
	for i := 0; ; i++ {
		name := prefix + randomSuffix()
		err := d.do(func(fd int) error { return unix.Mkdirat(fd, name, 0o700) })
		if errors.Is(err, unix.EEXIST) && i < 100 {
			continue
		}
		if err != nil {
			return nil, "", &os.PathError{Op: "mkdir", Path: filepath.Join(d.path, name), Err: err}
		}
		sub, err := d.step(name, false, true)
		return sub, name, err
	}
}

// OpenSub opens the existing directory name in d with O_NOFOLLOW, checked as OpenDir checks.
func (d *Dir) OpenSub(name string) (*Dir, error) {
	if err := plainName(name); err != nil {
		return nil, err
	}
	return d.step(name, false, true)
}

// ReadFile reads the file name in d (O_NOFOLLOW).
func (d *Dir) ReadFile(name string) ([]byte, error) {
	f, err := d.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// ReadDirNames lists the names in d.
func (d *Dir) ReadDirNames() ([]string, error) {
	var fd int
	err := d.do(func(dfd int) (err error) {
		fd, err = unix.Openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	return f.Readdirnames(-1)
}

// Remove removes the file or empty directory name in d (a symbolic link is removed, not
// followed).
func (d *Dir) Remove(name string) error {
	if err := plainName(name); err != nil {
		return err
	}
	return d.do(func(fd int) error {
		err := unix.Unlinkat(fd, name, 0)
		if errors.Is(err, unix.EISDIR) {
			err = unix.Unlinkat(fd, name, unix.AT_REMOVEDIR)
		}
		return err
	})
}

// RemoveAll removes name in d and everything below it, through the handle: no symbolic link is
// followed and no path outside d is touched.
func (d *Dir) RemoveAll(name string) error {
	if err := plainName(name); err != nil {
		return err
	}
	// /proc/self/fd/N is the directory the handle holds, wherever it is now; os.RemoveAll walks
	// below it with openat and O_NOFOLLOW.
	return d.do(func(fd int) error { return os.RemoveAll("/proc/self/fd/" + strconv.Itoa(fd) + "/" + name) })
}

// plainName refuses a name that is not a single path component.
func plainName(name string) error {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("safepath: %q is not a plain name", name)
	}
	return nil
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// trustedOwner reports whether uid may own a directory on a safe path: the effective user or root.
func trustedOwner(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

// step opens the directory name in d (creating it with mode 0700 when create is set and it is
// missing) with O_NOFOLLOW, and checks what it opened; last says whether it is the last
// component (which may not be writable by others even with the sticky bit).
func (d *Dir) step(name string, create, last bool) (*Dir, error) {
	path := filepath.Join(d.path, name)
	var fd int
	var isLink bool
	err := d.do(func(dfd int) (err error) {
		fd, err = unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(dfd, name, 0o700); err == nil || errors.Is(err, unix.EEXIST) {
				fd, err = unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		if errors.Is(err, unix.EACCES) {
			// A directory we may pass through but not list: hold it as a path only.
			fd, err = unix.Openat(dfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			var st unix.Stat_t
			isLink = unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
		}
		return err
	})
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		if isLink {
			return nil, &Error{path, "is a symbolic link", "give the directory it points to, after checking who made the link"}
		}
		return nil, &Error{path, "is not a directory", "give a directory"}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	sub := newDir(fd, path)
	if err := sub.check(last); err != nil {
		sub.Close()
		return nil, err
	}
	return sub, nil
}

// check applies the rule to the open directory d.
func (d *Dir) check(last bool) error {
	var st unix.Stat_t
	if err := d.do(func(fd int) error { return unix.Fstat(fd, &st) }); err != nil {
		return err
	}
	if !trustedOwner(st.Uid) {
		return &Error{d.path, fmt.Sprintf("is owned by uid %d, not by uid %d or root, so its owner could redirect what s3mount writes there", st.Uid, os.Geteuid()),
			fmt.Sprintf("use a directory of your own (chown %d %s, or another path)", os.Geteuid(), d.path)}
	}
	if st.Mode&0o022 != 0 && (last || st.Mode&unix.S_ISVTX == 0) {
		return &Error{d.path, fmt.Sprintf("is writable by group or others (mode %04o), so another user could redirect what s3mount writes there", st.Mode&0o7777),
			fmt.Sprintf("chmod go-w %s, or use another path", d.path)}
	}
	return nil
}

// sticky reports whether d has the sticky bit and is writable by others (like /tmp).
func (d *Dir) sticky() bool {
	var st unix.Stat_t
	return d.do(func(fd int) error { return unix.Fstat(fd, &st) }) == nil && st.Mode&unix.S_ISVTX != 0 && st.Mode&0o022 != 0
}

// walk opens path from / one component at a time (see the package doc), creating missing
// directories when create is set. With forFile, path is a file's directory: it may be a sticky
// directory writable by others (like /tmp; the file is checked itself), and a symbolic link to it
// is followed under the rule for links on the way.
func walk(path string, create, forFile bool) (*Dir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	rootFd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	root := newDir(rootFd, "/")
	if err := root.check(abs == "/"); err != nil {
		root.Close()
		return nil, err
	}
	stack := []*Dir{root} // the directories walked so far; the last is the current one
	closeAll := func(keep *Dir) {
		for _, d := range stack {
			if d != keep {
				d.Close()
			}
		}
	}
	todo := splitPath(abs)
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		cur := stack[len(stack)-1]
		if name == ".." {
			if len(stack) > 1 {
				cur.Close()
				stack = stack[:len(stack)-1]
			}
			continue
		}
		last := len(todo) == 0 && !forFile
		var st unix.Stat_t
		if err := cur.do(func(fd int) error { return unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) }); err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if len(todo) == 0 && !forFile {
				closeAll(nil)
				return nil, &Error{filepath.Join(cur.path, name), "is a symbolic link", "give the directory it points to, after checking who made the link"}
			}
			if cur.sticky() && !trustedOwner(st.Uid) {
				closeAll(nil)
				return nil, &Error{filepath.Join(cur.path, name), fmt.Sprintf("is a symbolic link owned by uid %d in a directory anyone can write", st.Uid),
					"give a path without it"}
			}
			if links++; links > maxLinks {
				closeAll(nil)
				return nil, &Error{abs, "has too many symbolic links", "give a path without them"}
			}
			buf := make([]byte, unix.PathMax)
			var n int
			err := cur.do(func(fd int) (err error) {
				n, err = unix.Readlinkat(fd, name, buf)
				return err
			})
			if err != nil {
				closeAll(nil)
				return nil, &os.PathError{Op: "readlink", Path: filepath.Join(cur.path, name), Err: err}
			}
			target := string(buf[:n])
			if filepath.IsAbs(target) {
				closeAll(stack[0])
				stack = stack[:1]
			}
			todo = append(splitPath(target), todo...)
			continue
		}
		next, err := cur.step(name, create, last)
		if err != nil {
			closeAll(nil)
			return nil, err
		}
		stack = append(stack, next)
	}
	d := stack[len(stack)-1]
	closeAll(d)
	d.path = abs
	return d, nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}
