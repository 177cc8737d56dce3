package creds

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// staticFromFile reads long-term keys (an IAM user, as StarRocks' IAM-user mode uses) from a file
// in the shared-credentials format:
//
//	aws_access_key_id = AKIA...
//	aws_secret_access_key = ...
//
// The file must belong to the mounting user and be unreadable by anyone else; keys are never
// accepted on a command line or in an fstab field.
func staticFromFile(path string) (aws.CredentialsProvider, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("refusing credentials file %s: it belongs to uid %d, not to the mounting user (uid %d); chown it", path, sys.Uid, os.Geteuid())
	}
	if mode := st.Mode().Perm(); mode&0o077 != 0 {
		return nil, fmt.Errorf("refusing credentials file %s: its mode %04o lets others read it; run chmod 600 %s", path, mode, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	defer f.Close()
	values := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			values[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	id, secret := values["aws_access_key_id"], values["aws_secret_access_key"]
	if id == "" || secret == "" {
		return nil, fmt.Errorf("credentials file %s has no aws_access_key_id and aws_secret_access_key", path)
	}
	return credentials.NewStaticCredentialsProvider(id, secret, values["aws_session_token"]), nil
}
