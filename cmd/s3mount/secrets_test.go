package main

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/s3mount/s3mount/fs/metrics"
)

const (
	testRole   = "arn:aws:iam::222222222222:role/backup"
	testSecret = "Zq7-secret-id"
)

// TestScrubArgsEverySpelling: every spelling of external_id that the parser accepts is masked
// in the arguments, and the copy taken before still holds the value.
func TestScrubArgsEverySpelling(t *testing.T) {
	for _, args := range [][]string{
		{"--role-arn", testRole, "--external-id", testSecret},
		{"--role-arn", testRole, "--external-id=" + testSecret},
		{"--role-arn", testRole, "--external_id", testSecret},
		{"--role-arn", testRole, "-external-id", testSecret},
		{"-o", "role_arn=" + testRole + ",external_id=" + testSecret},
		{"-o", "role_arn=" + testRole + ",external-id=" + testSecret},
		{"-o", "role_arn=" + testRole + `,external_id="` + testSecret + `",ro`},
		{"-o", "role_arn=" + testRole + `,external_id="a,` + testSecret + `"`},
		{"-o", "role_arn=" + testRole + `,external_id="` + testSecret}, // unterminated: refused, still masked
		{"--role-arn", testRole, "-oexternal_id=" + testSecret},
		{"--role-arn", testRole, "-oexternal-id=" + testSecret},
		{"--role-arn", testRole, "--external-id", testSecret, "--bogus"}, // refused by the parser
	} {
		all := append(append([]string(nil), args...), "s3://bucket/p", "/mnt")
		mine := cloneArgs(all)
		shown := cloneArgs(all)
		scrubArgs(shown)
		if s := strings.Join(shown, " "); strings.Contains(s, "Zq7") || strings.Contains(s, "secret-id") {
			t.Errorf("%q: still shows the secret after scrubbing: %s", args, s)
		}
		if !strings.Contains(strings.Join(mine, " "), testSecret) {
			t.Errorf("%q: scrubbing changed the copy", args)
		}
		if m := maskedArgs(all); strings.Contains(strings.Join(m, " "), testSecret) || !strings.Contains(strings.Join(all, " "), testSecret) {
			t.Errorf("%q: maskedArgs shows the secret or changed its input", args)
		}
	}
}

// TestChildArgsRoundTrip: the arguments the background child reads are the parent's, byte for
// byte (commas, quotes, spaces, empty arguments).
func TestChildArgsRoundTrip(t *testing.T) {
	want := []string{"-o", `role_arn=x,external_id="a,b c"`, "", "s3://b/p q", "/mnt"}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := sendArgs(w, want); err != nil {
		t.Fatal(err)
	}
	w.Close()
	data, _ := io.ReadAll(r)
	got := strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
	if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestUnknownOptionNeverEchoesValue: a mistyped option is named, with a suggestion, without its
// value; so are malformed -o lists and bad External IDs.
func TestUnknownOptionNeverEchoesValue(t *testing.T) {
	typo := filepath.Join(t.TempDir(), "typo.conf") // a line without its '='
	if err := os.WriteFile(typo, []byte("role_arn="+testRole+"\nexternal_id "+testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args    []string
		mention string
	}{
		{[]string{"--role-arn", testRole, "--externl-id=" + testSecret}, "did you mean --external-id?"},
		{[]string{"--role-arn", testRole, "--extrnal_id", testSecret}, "did you mean --external-id?"},
		{[]string{"-o", "role_arn=" + testRole + ",externalid=" + testSecret}, "did you mean external_id?"},
		{[]string{"-o", "=x,external_id=" + testSecret}, "without a name"},
		{[]string{"--config", typo}, "does not look like an option name"},
		{[]string{"--role-arn", testRole, "--external-id", testSecret + "!!"}, "External ID must be"},
		{[]string{"--role-arn", testRole, "--external-id", "é" + testSecret}, "External ID must be"},
	} {
		_, err := parseConfig(append(c.args, "s3://bucket/p", "/mnt"))
		if err == nil {
			t.Errorf("%q: accepted", c.args)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "Zq7") || !strings.Contains(msg, c.mention) {
			t.Errorf("%q: message %q shows the value or lacks %q", c.args, msg, c.mention)
		}
	}
}

// TestHTTPEndpointsRefused: plain http to another host is refused for S3, STS and IAM unless
// allow_http; loopback, https and IMDS are accepted.
func TestHTTPEndpointsRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"--endpoint", "http://10.0.0.5:9000"}, false},
		{[]string{"--endpoint", "http://minio.internal"}, false},
		{[]string{"--sts-endpoint", "http://sts.example.com"}, false},
		{[]string{"--iam-endpoint", "HTTP://iam.example.com"}, false},
		{[]string{"--endpoint", "http://10.0.0.5:9000", "--allow-http"}, true},
		{[]string{"-o", "allow_http,sts_endpoint=http://sts.example.com"}, true},
		{[]string{"--endpoint", "https://minio.internal"}, true},
		{[]string{"--endpoint", "http://127.0.0.1:9000"}, true},
		{[]string{"--endpoint", "http://localhost:9000"}, true},
		{[]string{"--endpoint", "http://[::1]:9000"}, true},
		{[]string{"--imds-endpoint", "http://169.254.169.254"}, true},
	} {
		_, err := parseConfig(append(c.args, "s3://bucket/p", "/mnt"))
		if c.ok != (err == nil) {
			t.Errorf("%q: err %v", c.args, err)
		}
		if err != nil && !strings.Contains(err.Error(), "allow_http") {
			t.Errorf("%q: the message does not say how to allow it: %v", c.args, err)
		}
	}
}

// TestPprofOnlyWhenAsked: the metrics endpoint serves Go's profiler only with the pprof option.
func TestPprofOnlyWhenAsked(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, with := range []bool{false, true} {
		addr, err := serveMetrics("127.0.0.1:0", with, metrics.New(), log)
		if err != nil {
			t.Fatal(err)
		}
		for path, want := range map[string]int{"/metrics": 200, "/debug/pprof/": map[bool]int{false: 404, true: 200}[with], "/debug/pprof/goroutine": map[bool]int{false: 404, true: 200}[with]} {
			resp, err := http.Get("http://" + addr.String() + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("pprof=%v: GET %s: %d, want %d", with, path, resp.StatusCode, want)
			}
		}
	}
	if _, err := parseConfig([]string{"--pprof", "s3://bucket/p", "/mnt"}); err == nil || !strings.Contains(err.Error(), "metrics_address") {
		t.Errorf("pprof without metrics_address: %v", err)
	}
}

// TestNotDumpable: after notDumpable the process may not be ptraced or dumped.
func TestNotDumpable(t *testing.T) {
	defer unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0)
	if err := notDumpable(); err != nil {
		t.Fatal(err)
	}
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
		t.Errorf("PR_GET_DUMPABLE = %d, %v; want 0", d, err)
	}
}

// TestConfigFilePermissions: an options file is refused when someone other than its owner (the
// mounting user or root) could have written it, or when it holds an External ID that everyone
// may read; the message names the file and the fix.
func TestConfigFilePermissions(t *testing.T) {
	base := t.TempDir() // 0700, in sticky /tmp
	write := func(dir, name, content string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	mkdir := func(name string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret := "role_arn=" + testRole + "\nexternal_id=" + testSecret + "\n"
	plain := "ro\nregion=eu-west-1\n"
	good := mkdir("good", 0o755)
	open := mkdir("open", 0o777)
	sticky := mkdir("sticky", 0o777|os.ModeSticky)
	foreign := write(good, "foreign.conf", plain, 0o600)
	if err := os.Chown(foreign, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link.conf")
	if err := os.Symlink(write(good, "target.conf", secret, 0o600), link); err != nil {
		t.Fatal(err)
	}
	openLink := filepath.Join(open, "link.conf") // anyone may point it elsewhere
	if err := os.Symlink(filepath.Join(good, "target.conf"), openLink); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		refused    string // "" accepted; else the fix the message gives
	}{
		{"0600 with a secret", write(good, "a.conf", secret, 0o600), ""},
		{"0640 with a secret", write(good, "b.conf", secret, 0o640), ""},
		{"0644 without a secret", write(good, "c.conf", plain, 0o644), ""},
		{"0644 with a secret", write(good, "d.conf", secret, 0o644), "chmod 600"},
		{"group-writable", write(good, "e.conf", plain, 0o620), "chmod go-w"},
		{"world-writable", write(good, "f.conf", plain, 0o606), "chmod go-w"},
		{"in a world-writable directory", write(open, "g.conf", secret, 0o600), "chmod go-w " + open},
		{"in a sticky directory", write(sticky, "h.conf", secret, 0o600), ""},
		{"owned by another user", foreign, "chown"},
		{"a symlink to a good file", link, "give the path of the file itself"},
		{"a symlink in a world-writable directory", openLink, "chmod go-w"},
	} {
		_, err := parseConfig([]string{"--config", c.path, "s3://bucket/p", "/mnt"})
		switch {
		case c.refused == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.refused != "" && err == nil:
			t.Errorf("%s: accepted", c.name)
		case c.refused != "" && (!strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.refused)):
			t.Errorf("%s: message %q does not name the file and the fix %q", c.name, err, c.refused)
		case err != nil && strings.Contains(err.Error(), "Zq7"):
			t.Errorf("%s: message shows the secret: %v", c.name, err)
		}
	}
}
