package fs

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/s3mount/s3mount/fs/backend/memback"
)

// TestDebugLogHasNoFileData: with Debug on, the request log shows WRITE and READ requests but
// none of the bytes written or read, nor xattr values; file names stay.
func TestDebugLogHasNoFileData(t *testing.T) {
	var logged syncBuffer
	opts := writeOptions()
	opts.Debug, opts.DebugLog = true, &logged
	mnt := testMount(t, memback.New(), opts)
	p := filepath.Join(mnt, "visible-name")
	createWritten(t, p, "Zq7secretcontent, the rest of the file")
	r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_DIRECT, 0) // the read reaches the daemon
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := r.Read(buf)
	r.Close()
	if err != nil || !strings.HasPrefix(string(buf[:n]), "Zq7secre") {
		t.Fatalf("read back %q, %v", buf[:n], err)
	}
	_ = syscall.Setxattr(p, "user.note", []byte("Xa9xattrvalue"), 0)
	s := logged.String()
	if !strings.Contains(s, "WRITE") || !strings.Contains(s, "READ") || !strings.Contains(s, "visible-name") {
		t.Fatalf("the debug log has no WRITE, READ or the file's name: the test proves nothing:\n%s", s)
	}
	for _, data := range []string{"Zq7", "Xa9"} {
		if strings.Contains(s, data) {
			t.Errorf("the debug log shows data (%q):\n%s", data, s)
		}
	}
}

func TestDataRedactor(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`rx 7: WRITE n2 {Fh 1 4096 bytes at 0} "secret d"... 4096b p12` + "\n", `rx 7: WRITE n2 {Fh 1 4096 bytes at 0} 4096b p12` + "\n"},
		{`rx 7: WRITE n2 {Fh 1} "a\"b\\" 4b p1`, `rx 7: WRITE n2 {Fh 1} 4b p1`},
		{`rx 9: SETXATTR n2 {} "user.x" "value" 5b p1`, `rx 9: SETXATTR n2 {} "user.x" 5b p1`},
		{`tx 8:     OK,  4096b data "secret d"...`, `tx 8:     OK,  4096b data`},
		{`tx 8:     OK,  4096b data (fd 4096b data)`, `tx 8:     OK,  4096b data (fd 4096b data)`},
		{`rx 3: LOOKUP n1 ["name with \" quote"] p1`, `rx 3: LOOKUP n1 ["name with \" quote"] p1`},
	} {
		var b strings.Builder
		if _, err := (dataRedactor{&b}).Write([]byte(c.in)); err != nil || b.String() != c.want {
			t.Errorf("%s\n got %s\nwant %s", c.in, b.String(), c.want)
		}
	}
}
