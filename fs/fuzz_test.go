package fs

// Run longer with: go test -fuzz=FuzzKeyMapping -fuzztime=30s ./fs/

import (
	"strings"
	"testing"
)

func FuzzKeyMapping(f *testing.F) {
	for _, s := range []string{"a", "", ".", "..", "a/b", "a\x00b", strings.Repeat("x", 256), "\xff\xfe", "..."} {
		f.Add("p/", s)
	}
	f.Fuzz(func(t *testing.T, dir, name string) {
		if !validName(name) {
			return
		}
		if strings.ContainsAny(name, "/\x00") || name == "." || name == ".." || len(name) > maxNameLen {
			t.Fatalf("validName accepted %q", name)
		}
		key := childKey(dir, name)
		if !strings.HasPrefix(key, dir) || strings.Contains(key[len(dir):], "/") {
			t.Fatalf("childKey(%q, %q) = %q leaves the directory", dir, name, key)
		}
		if p := dirPrefix(key); !strings.HasPrefix(p, dir) || !strings.HasSuffix(p, "/") {
			t.Fatalf("dirPrefix(%q) = %q", key, p)
		}
	})
}
