package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"unsafe"

	"github.com/s3mount/s3mount/internal/safepath"
	"golang.org/x/sys/unix"
)

// Secrets and the process list. Every user of the host can read every process's command line
// (/proc/PID/cmdline, ps). The kernel shows a process's arguments from its exec until its main
// masks them, a window no program can close: a secret given on the command line is exposed for
// that long, which is why the docs steer External IDs into a 0600 config file. After main has run
// no s3mount process shows one: main masks its own arguments first thing, and the background
// child (daemonize) gets the real arguments over a pipe (argsFD), its own command line being the
// masked copy.

// secretOptions are options whose values must not stay visible in the process list nor be echoed
// in error messages.
var secretOptions = map[string]bool{"external_id": true}

// isSecretOption reports whether an option name, in any spelling (dashes or underscores), names a
// secret.
func isSecretOption(name string) bool {
	return secretOptions[strings.ReplaceAll(name, "-", "_")]
}

// cloneArgs copies args into memory of our own, which scrubArgs may overwrite without touching
// the copy.
func cloneArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = string(append([]byte(nil), a...))
	}
	return out
}

// maskedArgs returns a copy of args with the values of secret options masked: what the
// background child shows as its command line.
func maskedArgs(args []string) []string {
	out := cloneArgs(args)
	scrubArgs(out)
	return out
}

// scrubArgs overwrites the values of secret options in place, in every spelling the parser takes:
// --external-id X, --external_id=X, -o external-id=X, -oexternal_id="a,b". Applied to os.Args it
// changes the process's own argument memory, which is what ps and /proc/PID/cmdline show (Go's
// os.Args strings point into it), so main must have copied the arguments first.
func scrubArgs(args []string) {
	// Whatever the parser takes as a secret value is masked wherever it stands; the lexical pass
	// below works even on a command line the parser refuses.
	if settings, _, err := parseArgs(cloneArgs(args)); err == nil {
		for _, s := range settings {
			if isSecretOption(s.name) && s.value != "" {
				maskValue(args, s.value)
			}
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return
		case a == "-o" && i+1 < len(args):
			scrubList(args[i+1])
			i++
		case strings.HasPrefix(a, "-o"):
			scrubList(a[2:])
		case strings.HasPrefix(a, "-"):
			name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !isSecretOption(name) {
				continue
			}
			if hasValue {
				mask(value)
			} else if i+1 < len(args) {
				mask(args[i+1])
				i++
			}
		}
	}
}

// scrubList masks the secret values inside an -o list, in place.
func scrubList(list string) {
	rest := list
	for rest != "" {
		var item string
		item, rest, _ = strings.Cut(rest, ",")
		name, value, ok := strings.Cut(item, "=")
		if !ok || !isSecretOption(name) {
			continue
		}
		if strings.HasPrefix(value, `"`) && !strings.HasSuffix(value, `"`) {
			// A quoted value with commas: mask up to the closing quote.
			if end := strings.Index(rest, `"`); end >= 0 {
				mask(value)
				mask(rest[:end])
				rest = strings.TrimPrefix(rest[end+1:], ",")
				continue
			}
			mask(value) // unterminated: everything from it on
			mask(rest)
			return
		}
		mask(value)
	}
}

// maskValue masks every occurrence of value in args.
func maskValue(args []string, value string) {
	for _, a := range args {
		for {
			i := strings.Index(a, value)
			if i < 0 {
				break
			}
			mask(a[i : i+len(value)])
			a = a[i+len(value):]
		}
	}
}

// mask overwrites the bytes of s with 'x'. s must live in writable memory: os.Args, or a copy
// made by cloneArgs.
func mask(s string) {
	if s == "" {
		return
	}
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	for i := range b {
		b[i] = 'x'
	}
}

// argsFD is the background child's end of the pipe that carries its real arguments.
const argsFD = 4

// sendArgs writes args to the child's argument pipe: each followed by a NUL, as in
// /proc/PID/cmdline (no argument can contain a NUL).
func sendArgs(w io.Writer, args []string) error {
	var b bytes.Buffer
	for _, a := range args {
		b.WriteString(a)
		b.WriteByte(0)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// receiveArgs reads the background child's real arguments from argsFD.
func receiveArgs() ([]string, error) {
	f := os.NewFile(argsFD, "args")
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading my arguments from the parent: %w", err)
	}
	if len(data) == 0 {
		return nil, nil
	}
	if data[len(data)-1] != 0 {
		return nil, fmt.Errorf("reading my arguments from the parent: cut short")
	}
	return strings.Split(string(data[:len(data)-1]), "\x00"), nil
}

// notDumpable makes the process non-dumpable before it holds any secret: other processes of the
// same user cannot ptrace it or read /proc/PID/mem and /proc/PID/environ, and it leaves no core
// dump with keys in it. Only root (CAP_SYS_PTRACE) can still look inside.
func notDumpable() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}

// openConfigFile opens an options file after checking that only its owner (the mounting user or
// root) can have written what it says, as ssh's StrictModes does: the file and every directory
// above it belong to the mounting user or root and are not writable by group or others (a sticky
// directory, like /tmp, excepted: there others cannot replace our entries); the file is not a
// symbolic link (internal/safepath). The caller checks the read permission once it knows whether
// the file holds a secret (see checkSecretFile).
func openConfigFile(path string) (*os.File, os.FileInfo, error) {
	f, err := safepath.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err == nil && st.Mode().Perm()&0o022 != 0 {
		err = fmt.Errorf("refusing it: %s is writable by group or others (mode %04o), who could change what the mount does; fix: chmod go-w %s", path, st.Mode().Perm(), path)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// checkSecretFile refuses an options file that holds a secret and that others may read: a
// world-readable file is the /etc/fstab mistake again. The group may read it: a group that
// root or the owner gives the file is trusted on purpose (root:backup 0640, say).
func checkSecretFile(path string, st os.FileInfo) error {
	if perm := st.Mode().Perm(); perm&0o004 != 0 {
		return fmt.Errorf("refusing it: it holds an External ID and every user may read it (mode %04o); fix: chmod 600 %s", perm, path)
	}
	return nil
}
