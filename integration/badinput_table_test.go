//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mount/s3mount/integration/world"
)

// TestInteg_BadInputCommandLine: every bad command line fails before anything is mounted, with a
// non-zero exit code and a message that names the problem.
func TestInteg_BadInputCommandLine(t *testing.T) {
	target := "s3://" + world.Bucket + "/team-a"
	role := world.AccessRole
	html := httptestServer(t)
	closedPort := freeAddr(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	os.WriteFile(file, nil, 0o644)
	nonEmpty := filepath.Join(dir, "full")
	os.MkdirAll(filepath.Join(nonEmpty, "x"), 0o755)
	openKeys := filepath.Join(dir, "keys")
	os.WriteFile(openKeys, []byte("aws_access_key_id = AKIA\naws_secret_access_key = s\n"), 0o644)
	os.Chmod(openKeys, 0o644)

	type tc struct {
		name     string
		args     []string // before the target; a trailing "@MP=path" replaces the mountpoint
		code     int
		contains string
	}
	cases := []tc{
		{"unknown flag", []string{"--frobnicate"}, 2, "unknown option"},
		{"unknown -o option", []string{"-o", "frobnicate=1"}, 2, "unknown option"},
		{"flag given a value", []string{"-o", "ro=maybe"}, 2, "is a flag"},
		{"missing value at the end", []string{"--region"}, 2, "needs a value"},
		{"empty value", []string{"-o", "region="}, 2, "needs a value"},
		{"bad size", []string{"--cache-size", "12Q"}, 2, "want a size"},
		{"negative size", []string{"--staging-size", "-5M"}, 2, "want a size"},
		{"part size below S3's minimum", []string{"--part-size", "1M"}, 2, "at least 5M"},
		{"bad duration", []string{"--metadata-ttl", "soon"}, 2, "want a duration"},
		{"bad mode", []string{"--file-mode", "999"}, 2, "octal"},
		{"bad uid", []string{"--uid", "alice"}, 2, "want a number"},
		{"bad concurrency", []string{"--concurrency", "0"}, 2, "from 1 to 1024"},
		{"role ARN with a short account", []string{"--role-arn", "arn:aws:iam::12:role/x"}, 2, "not a role ARN"},
		{"user ARN instead of a role", []string{"--role-arn", "arn:aws:iam::123456789012:user/bob"}, 2, "not a role ARN"},
		{"role ARN garbage", []string{"-o", "role_arn=hello"}, 2, "not a role ARN"},
		{"external id before any role", []string{"--external-id", "abc"}, 2, "give role_arn first"},
		{"external id non-ASCII", []string{"--role-arn", role, "--external-id", "clé-été"}, 2, "External ID"},
		{"external id too short", []string{"--role-arn", role, "--external-id", "a"}, 2, "External ID"},
		{"external id with a comma, unquoted", []string{"-o", "role_arn=" + role + ",external_id=team,a"}, 2, `unknown option "a"`},
		{"external id with a comma, quoted (parsed; STS rejects it)", []string{"-o", "role_arn=" + role + `,external_id="team,a"`}, 11, "External ID"},
		{"unterminated quote", []string{"-o", `external_id="abc`}, 2, "unterminated quote"},
		{"session name with a space", []string{"--role-arn", role, "--session-name", "has space"}, 2, "session name"},
		{"duration out of range", []string{"--role-arn", role, "--duration", "1m"}, 2, "duration"},
		{"unknown credential source", []string{"--credential-source", "magic"}, 2, "unknown credential source"},
		{"scope_down without a role", []string{"--scope-down"}, 2, "give a role_arn"},
		{"metrics on a public address", []string{"--role-arn", role, "--external-id", world.AccessExtID, "--metrics-address", "0.0.0.0:9290"}, 2, "loopback"},
		{"missing config file", []string{"--config", "/nonexistent/s3mount.conf"}, 2, "config file"},
		{"credentials file readable by others", []string{"--credentials-file", openKeys}, 11, "chmod 600"},
		{"missing credentials file", []string{"--credentials-file", "/nonexistent/keys"}, 11, "no such file"},
		{"unknown profile", []string{"--profile", "no-such-profile"}, 11, "no-such-profile"},
		{"IMDS unreachable", []string{"--imds-endpoint", "http://" + closedPort, "--retry-timeout", "1s"}, 11, "instance metadata"},
		{"invalid bucket name", []string{"@TARGET=s3://Bad_Bucket!/x"}, 2, "not a valid bucket name"},
		{"bucket name too short", []string{"@TARGET=s3://ab/x"}, 2, "not a valid bucket name"},
		{"prefix with ..", []string{"@TARGET=s3://" + world.Bucket + "/a/../b"}, 2, ".. segment"},
		{"prefix with an empty segment", []string{"@TARGET=s3://" + world.Bucket + "/a//b"}, 2, "empty"},
		{"missing positional arguments", []string{"@ONLY"}, 2, "expected a bucket and a mountpoint"},
		{"extra positional argument", []string{"extra"}, 2, "expected a bucket and a mountpoint"},
		{"mountpoint missing", []string{"@MP=" + filepath.Join(dir, "nope")}, 10, "does not exist"},
		{"mountpoint is a file", []string{"@MP=" + file}, 10, "not a directory"},
		{"mountpoint not empty", []string{"@MP=" + nonEmpty}, 10, "not empty"},
		{"mountpoint already mounted", []string{"@MP=/proc"}, 10, "already a mountpoint"},
		{"unknown bucket", append(accessChain(), "@TARGET=s3://demo-missing/x"), 12, "does not exist"},
		{"endpoint that is not S3", append(accessChain(), "--endpoint", html), 12, "cannot reach"},
		{"endpoint with nothing listening", append(accessChain(), "--endpoint", "http://"+closedPort), 12, "cannot reach"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{}, w.MountArgs()...)
			tgt, mp, only := target, "", false
			for _, a := range c.args {
				switch {
				case strings.HasPrefix(a, "@TARGET="):
					tgt = strings.TrimPrefix(a, "@TARGET=")
				case strings.HasPrefix(a, "@MP="):
					mp = strings.TrimPrefix(a, "@MP=")
				case a == "@ONLY":
					only = true
				default:
					args = append(args, a)
				}
			}
			args = append(args, "-f", tgt)
			var code int
			var stderr string
			switch {
			case only:
				code, stderr = runCommand(t, args...)
			case mp != "":
				code, stderr = runCommand(t, append(args, mp)...)
			default:
				code, stderr = runFailing(t, args...)
			}
			if code != c.code || !strings.Contains(stderr, c.contains) {
				t.Errorf("exit %d, want %d with %q; stderr:\n%s", code, c.code, c.contains, stderr)
			}
			if strings.Contains(stderr, world.AccessExtID) || strings.Contains(stderr, "clé-été") || strings.Contains(stderr, "team,a") {
				t.Errorf("stderr shows an External ID:\n%s", stderr)
			}
			record(t, "bad-input", c.name, fmt.Sprintf("exit %d: %s", code, firstLine(stderr)))
		})
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(strings.TrimPrefix(s, "s3mount: "))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// runCommand runs s3mount with args as given and returns the exit code and stderr.
func runCommand(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := command(args...)
	out, err := cmd.CombinedOutput()
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func httptestServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "<html><body>Not Found</body></html>")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestInteg_BadInputKeys: keys that cannot be file names are hidden or shown as docs/SEMANTICS.md
// says, and nothing resolves to a path outside the mount.
func TestInteg_BadInputKeys(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	long := strings.Repeat("n", 300)
	invalid := "bad-\xff\xfe-utf8"
	keys := map[string]string{
		"a//b": "double slash", "../x": "dot dot", "./x": "dot", "m/": "marker with data",
		"m/inside": "in", long: "long", invalid: "invalid utf-8", "k": "file shadowed", "k/child": "child",
		"ok.txt": "ok",
	}
	stored := map[string]bool{}
	for k, v := range keys {
		if err := w.Put(ctx, prefix+k, strings.NewReader(v)); err != nil {
			// MinIO refuses some keys real S3 accepts ("a//b", "../x", "./x"); the fs unit test
			// TestListingMapsKeysToTree covers those against the in-memory S3.
			t.Logf("MinIO refused key %q: %v", k, err)
			record(t, "bad-input", fmt.Sprintf("key %q", k), "refused by MinIO itself; covered against the in-memory S3 by TestListingMapsKeysToTree (hidden)")
			continue
		}
		stored[k] = true
	}
	if err := w.Put(ctx, "team-a/escape-target", strings.NewReader("outside")); err != nil {
		t.Fatal(err)
	}
	m := mount(t, "s3://"+world.Bucket+"/"+strings.TrimSuffix(prefix, "/"), accessChain()...)
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, e := range entries {
		listed = append(listed, e.Name())
	}
	expect := func(name, what string, ok bool, outcome string) {
		t.Helper()
		if !ok {
			t.Errorf("%s: %s (listing %q)", name, what, listed)
		}
		record(t, "bad-input", "key "+name, outcome)
	}
	has := func(n string) bool {
		for _, l := range listed {
			if l == n {
				return true
			}
		}
		return false
	}
	if stored["a//b"] {
		st, err := os.Stat(m.path("a"))
		sub, _ := os.ReadDir(m.path("a"))
		expect(`"a//b"`, "want a directory a with nothing visible in it", err == nil && st.IsDir() && len(sub) == 0, "directory a shown, the empty segment hidden")
	}
	if stored["../x"] {
		expect(`"../x"`, "a .. key must stay hidden", !has("..") && !has("x"), "hidden")
	}
	if stored["./x"] {
		expect(`"./x"`, "a . key must stay hidden", !has("."), "hidden")
	}
	_, err = os.Stat(filepath.Join(m.dir, "..", "escape-target"))
	expect("a path through ..", "the parent of the mount is the host's, not the bucket's", err != nil, "no path leads outside the mount")
	data, err := os.ReadFile(m.path("m", "inside"))
	st, _ := os.Stat(m.path("m"))
	expect(`"m/" marker with data`, "want a directory whose marker data is not shown", st != nil && st.IsDir() && err == nil && string(data) == "in", "directory m; the marker's data is not shown")
	if stored[long] {
		_, err = os.Stat(filepath.Join(m.dir, long))
		expect("300-byte name", "want hidden and ENAMETOOLONG", !has(long) && errors.Is(err, syscall.ENAMETOOLONG), "hidden; lookup gives ENAMETOOLONG")
	} else {
		_, err = os.Stat(filepath.Join(m.dir, long))
		expect("300-byte name (lookup)", "want ENAMETOOLONG", errors.Is(err, syscall.ENAMETOOLONG), "lookup gives ENAMETOOLONG")
	}
	if stored[invalid] {
		data, err = os.ReadFile(m.path(invalid))
		expect("invalid UTF-8", "want shown with the same bytes", has(invalid) && err == nil && string(data) == "invalid utf-8", "shown with the same bytes")
	}
	// Whether MinIO lists the prefix k/ (a HEAD of k/child can answer although no listing shows it).
	bothExist := false
	if out, err := w.Admin.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(world.Bucket), Prefix: aws.String(prefix + "k/")}); err == nil {
		bothExist = len(out.Contents) > 0
	}
	if !bothExist {
		// MinIO keeps one of an object and a prefix of the same name; real S3 keeps both.
		record(t, "bad-input", `key "k" and "k/child"`, "MinIO cannot hold both; covered against the in-memory S3 by TestListingMapsKeysToTree (directory shown, object hidden)")
	}
	if bothExist {
		st, err = os.Stat(m.path("k"))
		data, _ = os.ReadFile(m.path("k", "child"))
		expect(`"k" and "k/child"`, "want k a directory holding child", err == nil && st.IsDir() && string(data) == "child", "directory k shown; the object k is hidden")
	}
	if !has("ok.txt") {
		t.Errorf("an ordinary file is missing: %q", listed)
	}
}
