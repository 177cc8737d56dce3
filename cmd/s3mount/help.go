package main

import (
	"fmt"
	"io"
)

// Help where people type it: every subcommand answers --help and -h with its own usage (exit 0),
// wherever the flag stands among its arguments (before a "--").

// subcommandUsage is the usage text of each subcommand; the mount command's is usage().
var subcommandUsage = map[string]string{
	"check": `Usage: s3mount check [--json] [options] s3://BUCKET[/PREFIX]

Tries every piece a mount depends on, in order, and prints a checklist: the credential source
(instance profile, standard chain, keys file), each AssumeRole hop, then S3 on the target (region,
listing, reading and, unless --ro, writing, deleting and a multipart upload, with a probe object it
removes again). It takes the same options as a mount; no mountpoint.

  --json    print the checklist as JSON: {"ok", "target", "checks": [{"stage", "name", "ok", "detail", "fix", "cause"}]}

Exit status: 0 all passed; 21 the credential source failed; 22 an AssumeRole hop failed;
23 S3 on the target failed; 2 bad usage. docs/CREDENTIALS.md has a troubleshooting table.
`,
	"policy": `Usage: s3mount policy [--read-only] [--principal ARN] [--external-id ID] [--only permission|trust] s3://BUCKET[/PREFIX]

Prints the least-privilege IAM policies for a mount of BUCKET/PREFIX, ready to paste into IAM:
the permission policy of the role the mount ends with and, given --principal, that role's trust
policy.

  --read-only, --ro        only what a read-only mount needs
  --principal ARN          who may assume the role: the instance role or the previous hop's role
  --external-id ID         require this External ID in the trust policy
  --only permission|trust  print that one policy document instead of both
`,
	"status": `Usage: s3mount status [--json] [MOUNTPOINT]

Shows every s3mount mount of this host (or the one at MOUNTPOINT) that the caller may ask: its
source, its credential chain (role ARNs, never External IDs) and when its credentials expire, the
files being written and the parts in flight, bytes and requests since the mount, the errors of
the last 5 minutes, and cache use. It asks each daemon over its control socket, which only the
user who mounted can open (/run/s3mount for root, else $XDG_RUNTIME_DIR/s3mount).

  --json    print a JSON array, one object per mount

Exit status: 0 every mount asked is live and its last commit succeeded; 30 a mount is dead (its
daemon is gone or does not answer; "transport endpoint is not connected": clean up with
fusermount3 -uz MOUNTPOINT) or unreachable (it works, but its daemon has no control socket: one
older than status); 31 a mount's last commit failed (S3 does not have a file that was
closed or fsync'ed); 32 no s3mount mount (or none at MOUNTPOINT); 2 bad usage. Mounts of other
users are listed as not-yours and do not change the exit status.
`,
	"version":    "Usage: s3mount version\n\nPrints the version of s3mount.\n",
	"man":        "Usage: s3mount man\n\nWrites the s3mount(8) man page (roff) to standard output.\n",
	"completion": "Usage: s3mount completion bash\n\nWrites a bash completion script for s3mount to standard output.\n",
}

// wantsHelp reports whether args (a subcommand's arguments) ask for help: --help or -h before
// any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--help", "-h", "-help":
			return true
		}
	}
	return false
}

// helpFor prints the usage of the command args start with if they ask for help, and reports
// whether it did.
func helpFor(args []string, stdout io.Writer) bool {
	if len(args) > 0 {
		if text, ok := subcommandUsage[args[0]]; ok {
			if !wantsHelp(args[1:]) {
				return false
			}
			fmt.Fprint(stdout, text)
			return true
		}
	}
	if !wantsHelp(args) {
		return false
	}
	fmt.Fprint(stdout, usage())
	return true
}
