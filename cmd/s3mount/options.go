package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/s3mount/s3mount/creds"
)

// option is one setting, usable as --name-with-dashes VALUE, --name=VALUE or -o name=value (and so
// in an fstab options field). Options are applied in command-line order, which is what lets
// role_arn start a new hop and external_id apply to the latest one.
type option struct {
	name  string // as in -o, with underscores
	arg   string // placeholder for the value; "" for a boolean flag
	group string
	help  string
	set   func(c *config, v string) error
}

var optionTable = []option{
	{"endpoint", "URL", "S3", "S3 endpoint URL (MinIO, VPC endpoint); default AWS", func(c *config, v string) error { c.s3.Endpoint = v; return nil }},
	{"region", "REGION", "S3", "bucket region; default from the environment or the instance, and a bucket S3 says is elsewhere is followed there", func(c *config, v string) error { c.region = v; return nil }},
	{"path_style", "", "S3", "address the bucket as endpoint/bucket (most S3-compatible servers)", func(c *config, v string) error { c.s3.PathStyle = true; return nil }},

	{"sse", "AES256|aws:kms", "S3", "server-side encryption of new objects (default: the bucket's)", func(c *config, v string) error { c.s3.SSE = v; return nil }},
	{"sse_kms_key_id", "KEY", "S3", "KMS key of sse=aws:kms (default: the account's S3 key)", func(c *config, v string) error { c.s3.SSEKMSKeyID = v; return nil }},
	{"storage_class", "CLASS", "S3", "storage class of new objects, e.g. STANDARD_IA, INTELLIGENT_TIERING", func(c *config, v string) error { c.s3.StorageClass = v; return nil }},
	{"requester_pays", "", "S3", "accept paying for requests to a requester-pays bucket", func(c *config, v string) error { c.s3.RequesterPays = true; return nil }},
	{"expected_bucket_owner", "ACCOUNT", "S3", "refuse to use the bucket unless this 12-digit account owns it", func(c *config, v string) error {
		if len(v) != 12 || strings.Trim(v, "0123456789") != "" {
			return fmt.Errorf("want a 12-digit account ID, got %q", v)
		}
		c.s3.ExpectedBucketOwner = v
		return nil
	}},
	{"checksum", "CRC32|CRC32C|SHA1|SHA256", "S3", "have S3 verify a checksum of every upload", func(c *config, v string) error { c.s3.ChecksumAlgorithm = strings.ToUpper(v); return nil }},

	{"credential_source", "SOURCE", "Credentials", "first link of the chain: imds (the instance profile, the default), default (the standard AWS chain) or none (unsigned requests)", func(c *config, v string) error {
		c.chain.Source = creds.Source(v)
		return nil
	}},
	{"no_sign_request", "", "Credentials", "send unsigned requests, with no credentials at all: for public buckets and datasets (credential_source=none)", func(c *config, v string) error {
		c.chain.Source = creds.SourceNone
		return nil
	}},
	{"profile", "NAME", "Credentials", "shared-config profile (implies credential_source=default)", func(c *config, v string) error {
		c.chain.Source, c.chain.Profile = creds.SourceDefault, v
		return nil
	}},
	{"imdsv1", "", "Credentials", "allow falling back to IMDSv1 when no IMDSv2 token can be had, also in credential_source=default (off by default)", func(c *config, v string) error { c.chain.AllowIMDSv1 = true; return nil }},
	{"credentials_file", "PATH", "Credentials", "long-term keys (aws_access_key_id/aws_secret_access_key) from this file, which must be yours and mode 0600; never on the command line", func(c *config, v string) error {
		c.chain.Source, c.chain.CredentialsFile = creds.SourceFile, v
		return nil
	}},
	{"allow_http", "", "S3", "accept http:// endpoints on other hosts than this one (endpoint, sts_endpoint, iam_endpoint): requests, data and STS's answers with credentials then cross the network in clear text", func(c *config, v string) error { c.allowHTTP = true; return nil }},
	{"config", "PATH", "Credentials", "read more options from a file, one name=value per line (# comments), applied here; it and its directories must be yours or root's and not writable by others, and a file with an external_id not readable by everyone (chmod 600)", nil},
	{"imds_endpoint", "URL", "Credentials", "instance metadata service address (default AWS_EC2_METADATA_SERVICE_ENDPOINT or 169.254.169.254)", func(c *config, v string) error { c.chain.IMDSEndpoint = v; return nil }},
	{"sts_endpoint", "URL", "Credentials", "STS endpoint URL", func(c *config, v string) error { c.chain.STSEndpoint = v; return nil }},
	{"iam_endpoint", "URL", "Credentials", "IAM endpoint URL (only used to explain AssumeRole denials)", func(c *config, v string) error { c.chain.IAMEndpoint = v; return nil }},
	{"role_arn", "ARN", "Credentials", "assume this role next; repeat for a chain of hops", func(c *config, v string) error {
		c.chain.Hops = append(c.chain.Hops, creds.Hop{RoleARN: v})
		return nil
	}},
	{"external_id", "ID", "Credentials", "External ID for the latest role_arn", func(c *config, v string) error {
		h, err := c.lastHop("external_id")
		if err == nil {
			h.ExternalID = creds.Secret(v)
		}
		return err
	}},
	{"session_name", "NAME", "Credentials", "session name for the latest role_arn (default s3mount@host+user)", func(c *config, v string) error {
		h, err := c.lastHop("session_name")
		if err == nil {
			h.SessionName = v
		}
		return err
	}},
	{"duration", "DURATION", "Credentials", "session duration for the latest role_arn, e.g. 1h", func(c *config, v string) error {
		h, err := c.lastHop("duration")
		if err != nil {
			return err
		}
		h.Duration, err = time.ParseDuration(v)
		return err
	}},
	{"session_policy_file", "PATH", "Credentials", "session policy (JSON) narrowing the latest role_arn", func(c *config, v string) error {
		h, err := c.lastHop("session_policy_file")
		if err != nil {
			return err
		}
		data, err := os.ReadFile(v)
		if err == nil && !json.Valid(data) {
			err = fmt.Errorf("%s is not JSON", v)
		}
		h.Policy = string(data)
		return err
	}},
	{"source_identity", "NAME", "Credentials", "SourceIdentity recorded by STS for the latest role_arn (and carried along the chain)", func(c *config, v string) error {
		h, err := c.lastHop("source_identity")
		if err == nil {
			h.SourceIdentity = v
		}
		return err
	}},
	{"scope_down", "", "Credentials", "narrow the last hop to the mounted bucket and prefix with a generated session policy (least privilege even when the role grants more)", func(c *config, v string) error { c.scopeDown = true; return nil }},

	{"ro", "", "Mount", "mount read-only", func(c *config, v string) error { c.fs.ReadOnly = true; return nil }},
	{"rw", "", "Mount", "mount read-write (the default)", func(c *config, v string) error { c.fs.ReadOnly = false; return nil }},
	{"uid", "UID", "Mount", "owner of files and directories without a stored owner (default: the mounting user)", func(c *config, v string) error { return parseUint32(v, &c.fs.UID) }},
	{"gid", "GID", "Mount", "group of files and directories without a stored group", func(c *config, v string) error { return parseUint32(v, &c.fs.GID) }},
	{"file_mode", "MODE", "Mount", "permissions of files without a stored mode, octal (default 0644)", func(c *config, v string) error { return parseMode(v, &c.fs.FileMode) }},
	{"dir_mode", "MODE", "Mount", "permissions of directories without a stored mode, octal (default 0755)", func(c *config, v string) error { return parseMode(v, &c.fs.DirMode) }},
	{"allow_root", "", "Mount", "let root access the mount too (implies default_permissions; a mount by root has it already, other users' mounts cannot have it: use allow_other)", func(c *config, v string) error { c.fs.AllowRoot = true; return nil }},
	{"default_permissions", "", "Mount", "have the kernel check modes and owners before every access (the default with allow_other or allow_root)", func(c *config, v string) error {
		c.permissions = permsOn
		return nil
	}},
	{"no_default_permissions", "", "Mount", "with allow_other: check no modes or owners, so every local user may read, change and delete every file with the role's power (see docs/SECURITY.md)", func(c *config, v string) error {
		c.permissions = permsOff
		return nil
	}},
	{"suid", "", "Mount", "show setuid and setgid bits stored on objects and honour them (by default they are hidden and the mount is nosuid,nodev; see docs/SECURITY.md)", func(c *config, v string) error { c.fs.Suid = true; return nil }},
	{"nosuid", "", "Mount", "hide setuid and setgid bits stored on objects (the default)", func(c *config, v string) error { c.fs.Suid = false; return nil }},

	{"cache_size", "SIZE", "Caching", "memory for cached object content, e.g. 256M (0 turns the cache off)", func(c *config, v string) error { return parseSize(v, &c.fs.CacheSize) }},
	{"listing_attrs", "", "Caching", "take file attributes from listings alone, without a HEAD per file: fast ls -l of large directories; stored modes, owners, times and symlinks show only on lookups by name", func(c *config, v string) error { c.fs.ListingAttrs = true; return nil }},
	{"lookup_head", "", "Caching", "look names up with HEAD instead of a GET of their first 256K (which the read that usually follows then finds in memory): less transfer when files are stat'ed but not read", func(c *config, v string) error { c.fs.LookupHead = true; return nil }},
	{"cache_dir", "DIR", "Caching", "directory for the disk cache (default: STAGING_DIR/cache); like staging_dir, refused (exit 15) unless it and every directory above it are owned by you or root and not writable by others", func(c *config, v string) error { c.fs.DiskCacheDir = v; return nil }},
	{"disk_cache_size", "SIZE", "Caching", "local disk for whole objects read at random, at most half the free space (default 2G; 0 turns it off)", func(c *config, v string) error { return parseSize(v, &c.fs.DiskCacheSize) }},
	{"metadata_ttl", "DURATION", "Caching", "how long names and attributes are cached (default 1s)", func(c *config, v string) error {
		d, err := parseDuration(v)
		c.fs.EntryTTL, c.fs.AttrTTL = d, d
		return err
	}},
	{"negative_ttl", "DURATION", "Caching", "how long a missing name is remembered (default 1s)", func(c *config, v string) error {
		d, err := parseDuration(v)
		c.fs.NegativeTTL = d
		return err
	}},
	{"read_part_size", "SIZE", "Performance", "size of each ranged GET of read-ahead, aligned to multiples of it; best the part size the objects were uploaded in (default 8M)", func(c *config, v string) error { return parseSize(v, &c.fs.ReadPartSize) }},
	{"max_readahead", "SIZE", "Performance", "largest read-ahead window of one sequential reader: it grows to 64M as the reader reads on, and beyond (when this is larger) only while the reader waits for the GETs in flight, as on EC2, where 256M pays; all readers share 256M (default 64M)", func(c *config, v string) error { return parseSize(v, &c.fs.MaxReadahead) }},
	{"kernel_readahead", "SIZE", "Performance", "the kernel's read-ahead for the mount, and so its largest read request (default 1M, as root; 0 keeps the kernel's 128K)", func(c *config, v string) error { return parseSize(v, &c.fs.KernelReadahead) }},
	{"part_size", "SIZE", "Performance", "multipart upload part size, at least 5M (default 8M)", func(c *config, v string) error { return parseSize(v, &c.fs.PartSize) }},
	{"concurrency", "N", "Performance", "parallel GETs, and parallel part uploads to start with, which grow up to 4×N while each part keeps its speed (default 32 GETs; uploads from 8 up to 32)", func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1024 {
			return fmt.Errorf("want a number from 1 to 1024, got %q", v)
		}
		c.fs.ReadConcurrency, c.fs.UploadConcurrency, c.fs.MaxUploadConcurrency, c.s3.Concurrency = n, n, 4*n, n
		return nil
	}},
	{"staging_dir", "DIR", "Writing", "local directory for files being written (default /var/cache/s3mount or ~/.cache/s3mount); refused (exit 15) if a symbolic link, or if it or a directory above it is another user's or writable by others", func(c *config, v string) error { c.stagingRoot = v; return nil }},
	{"staging_size", "SIZE", "Writing", "bound on the local space used for files being written (default 4G)", func(c *config, v string) error { return parseSize(v, &c.fs.StagingSize) }},
	{"foreground", "", "Mount", "stay in the foreground (-f); by default s3mount returns once the mount is live and runs in the background", func(c *config, v string) error { c.foreground = true; return nil }},
	{"debug", "", "Mount", "log debug messages (never secrets)", func(c *config, v string) error { c.debug = true; return nil }},
	{"log_file", "PATH", "Mount", "in the background, log here instead of to syslog; refused (exit 15) if a symbolic link, another user's, or in a directory others can write", func(c *config, v string) error { c.logFile = v; return nil }},
	{"retry_timeout", "DURATION", "Mount", "at start, keep retrying an unreachable network, IMDS or STS for this long (default 30s; for boot)", func(c *config, v string) error {
		d, err := parseDuration(v)
		c.retryTimeout = d
		return err
	}},
	{"metrics_address", "HOST:PORT", "Mount", "serve Prometheus metrics at http://HOST:PORT/metrics (loopback only); SIGUSR1 logs the same summary", func(c *config, v string) error { c.metricsAddr = v; return nil }},
	{"pprof", "", "Mount", "also serve Go's profiler at http://HOST:PORT/debug/pprof/ of metrics_address (off by default: profiles show what the daemon is doing, to every local user)", func(c *config, v string) error { c.pprof = true; return nil }},
	{"shutdown_timeout", "DURATION", "Mount", "on SIGTERM, how long to wait for files being written to be closed (default 30s)", func(c *config, v string) error {
		d, err := parseDuration(v)
		c.shutdownGrace = d
		return err
	}},
	{"debug_fuse", "", "Mount", "log every FUSE request (with sizes, never file data)", func(c *config, v string) error { c.fs.Debug = true; return nil }},
	{"allow_other", "", "Mount", "let other users access the mount, as the modes and owners shown allow (implies default_permissions)", func(c *config, v string) error { c.fs.AllowOther = true; return nil }},
	{"nonempty", "", "Mount", "allow mounting over a non-empty directory", func(c *config, v string) error { c.nonEmpty = true; return nil }},
	{"request_timeout", "DURATION", "Network", "an attempt of a request to S3 or STS fails, and is retried, once it has waited this long to connect, for the answer or for a transfer to move (default 15s)", func(c *config, v string) error {
		d, err := parseDuration(v)
		if err == nil && d == 0 {
			err = fmt.Errorf("want a duration above 0 (a network wait is always bounded), like 10s")
		}
		c.s3.RequestTimeout, c.chain.RequestTimeout = d, d
		return err
	}},
	{"op_timeout", "DURATION", "Network", "an operation that has waited this long in all on S3 or on credentials (retries included; time moving data does not count) fails with ETIMEDOUT; a credential refresh is abandoned after as long (default 45s)", func(c *config, v string) error {
		d, err := parseDuration(v)
		if err == nil && d == 0 {
			err = fmt.Errorf("want a duration above 0 (a network wait is always bounded), like 30s")
		}
		c.s3.OpTimeout, c.chain.RefreshTimeout = d, d
		return err
	}},
}

// aliases maps short flags to option names.
var aliases = map[string]string{"f": "foreground", "d": "debug"}

func findOption(name string) (*option, bool) {
	name = strings.ReplaceAll(name, "-", "_")
	if a, ok := aliases[name]; ok {
		name = a
	}
	for i := range optionTable {
		if optionTable[i].name == name {
			return &optionTable[i], true
		}
	}
	return nil, false
}

// setting is one name=value from the command line or an -o list.
type setting struct{ name, value string }

// parseArgs splits the command line into settings (in order) and positional arguments.
func parseArgs(args []string) (settings []setting, positional []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return settings, append(positional, args[i+1:]...), nil
		case a == "-o":
			if i+1 == len(args) {
				return nil, nil, fmt.Errorf("-o needs a list of options, like -o ro,region=eu-west-1")
			}
			i++
			list, err := splitOptionList(args[i])
			if err != nil {
				return nil, nil, err
			}
			settings = append(settings, list...)
		case strings.HasPrefix(a, "-o"):
			list, err := splitOptionList(a[2:])
			if err != nil {
				return nil, nil, err
			}
			settings = append(settings, list...)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			o, ok := findOption(name)
			if !ok {
				typed, _, _ := strings.Cut(a, "=")
				return nil, nil, unknownOption(typed) // never the value
			}
			if o.arg != "" && !hasValue {
				if i+1 == len(args) || isOptionArg(args[i+1]) {
					return nil, nil, fmt.Errorf("option %s needs a value: --%s %s", a, dashed(o.name), o.arg)
				}
				i++
				value = args[i]
			}
			settings = append(settings, setting{o.name, value})
		default:
			positional = append(positional, a)
		}
	}
	return settings, positional, nil
}

// isOptionArg reports whether a command-line word is one of our options (so it cannot be the
// value of the option before it).
func isOptionArg(a string) bool {
	if a == "-o" || strings.HasPrefix(a, "-o") && len(a) > 2 && strings.Contains(a, "=") {
		return true
	}
	if !strings.HasPrefix(a, "-") || len(a) < 2 {
		return false
	}
	name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
	_, ok := findOption(name)
	return ok
}

// splitOptionList splits "a,b=c,d=\"x,y\"" into settings. A value in double quotes may contain
// commas (External IDs may).
func splitOptionList(s string) ([]setting, error) {
	var out []setting
	for s != "" {
		var item string
		name, rest, _ := strings.Cut(s, "=")
		if name == "" {
			return nil, fmt.Errorf("an -o list has an item without a name before '=' (like \",=VALUE\"); the list is not shown, it may hold a secret")
		}
		if strings.Contains(name, ",") || !strings.Contains(s, "=") {
			item, s, _ = strings.Cut(s, ",")
			if item != "" {
				out = append(out, setting{name: item})
			}
			continue
		}
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return nil, fmt.Errorf("option %s: unterminated quote", name)
			}
			out = append(out, setting{name, rest[1 : end+1]})
			rest = rest[end+2:]
			if rest != "" && !strings.HasPrefix(rest, ",") {
				return nil, fmt.Errorf("option %s: expected a comma after the quoted value", name)
			}
			s = strings.TrimPrefix(rest, ",")
			continue
		}
		item, s, _ = strings.Cut(rest, ",")
		out = append(out, setting{name, item})
	}
	return out, nil
}

// unknownOption names an option that does not exist, and the nearest one that does. It never
// shows a value: a mistyped external_id is still a secret.
func unknownOption(name string) error {
	if strings.TrimLeft(strings.ToLower(name), "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
		// Not an option's name but something else, a line of a config file say: not shown.
		return fmt.Errorf("an option is unknown, and not shown since it does not look like an option name (it may hold a secret); check the spelling of each name=value (see s3mount --help)")
	}
	if s := suggestOption(name); s != "" {
		return fmt.Errorf("unknown option %q; did you mean %s? (see s3mount --help)", name, s)
	}
	return fmt.Errorf("unknown option %q (see s3mount --help)", name)
}

// suggestOption returns the option nearest to name (at most a third of its letters off), in
// the spelling of name ("--x-y" or "x_y"), or "".
func suggestOption(name string) string {
	want := strings.ReplaceAll(strings.TrimLeft(name, "-"), "-", "_")
	best, bestDist := "", len(want)/3+1
	for _, o := range optionTable {
		if d := editDistance(want, o.name); d < bestDist {
			best, bestDist = o.name, d
		}
	}
	if best == "" {
		return ""
	}
	if strings.HasPrefix(name, "-") {
		return "--" + dashed(best)
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func dashed(name string) string { return strings.ReplaceAll(name, "_", "-") }

// apply applies settings in order to c.
func (c *config) apply(settings []setting) error {
	return c.applyDepth(settings, 0)
}

func (c *config) applyDepth(settings []setting, depth int) error {
	for _, s := range settings {
		if s.name == "config" {
			if depth > 4 || s.value == "" {
				return fmt.Errorf("option config: want a file, not nested more than 4 deep")
			}
			list, err := readConfigFile(s.value)
			if err == nil {
				err = c.applyDepth(list, depth+1)
			}
			if err != nil {
				return fmt.Errorf("config file %s: %w", s.value, err)
			}
			continue
		}
		o, ok := findOption(s.name)
		if !ok && ignoredOption(s.name) {
			continue
		}
		if !ok {
			return unknownOption(s.name)
		}
		if o.arg == "" && s.value != "" {
			if b, err := strconv.ParseBool(s.value); err != nil || !b {
				return fmt.Errorf("option %s is a flag and takes no value (got %q)", o.name, s.value)
			}
		}
		if o.arg != "" && s.value == "" {
			return fmt.Errorf("option %s needs a value: %s=%s", o.name, o.name, o.arg)
		}
		if err := o.set(c, s.value); err != nil {
			return fmt.Errorf("option %s: %w", o.name, err)
		}
	}
	return nil
}

func (c *config) lastHop(opt string) (*creds.Hop, error) {
	if len(c.chain.Hops) == 0 {
		return nil, fmt.Errorf("%s applies to the role_arn before it; give role_arn first", opt)
	}
	return &c.chain.Hops[len(c.chain.Hops)-1], nil
}

// readConfigFile reads options from a file: one name=value (or a flag name) per line, with #
// comments; values are taken verbatim (commas included).
func readConfigFile(path string) ([]setting, error) {
	f, st, err := openConfigFile(path)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	var out []setting
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, _ := strings.Cut(line, "=")
		out = append(out, setting{strings.TrimSpace(name), strings.TrimSpace(value)})
		if isSecretOption(strings.TrimSpace(name)) {
			if err := checkSecretFile(path, st); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// parseSize accepts a byte count with an optional K, M, G or T suffix (powers of 1024; "KiB",
// "MB" and the like too).
func parseSize(v string, dst *int64) error {
	s := strings.ToUpper(strings.TrimSpace(v))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), "I")
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("want a size like 512K, 64M or 2G, got %q", v)
	}
	*dst = n * mult
	return nil
}

func parseUint32(v string, dst *uint32) error {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return fmt.Errorf("want a number, got %q", v)
	}
	*dst = uint32(n)
	return nil
}

func parseMode(v string, dst *uint32) error {
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || n > 0o7777 {
		return fmt.Errorf("want an octal mode like 0640, got %q", v)
	}
	*dst = uint32(n)
	return nil
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want a duration like 1s, 500ms or 5m, got %q", v)
	}
	return d, nil
}

// optionGroups returns the option table by topic, topics in table order.
func optionGroups() (order []string, groups map[string][]option) {
	groups = map[string][]option{}
	for _, o := range optionTable {
		if _, ok := groups[o.group]; !ok {
			order = append(order, o.group)
		}
		groups[o.group] = append(groups[o.group], o)
	}
	return order, groups
}

// usage renders the option table grouped by topic.
func usage() string {
	var b strings.Builder
	b.WriteString(`Usage: s3mount [options] s3://BUCKET[/PREFIX] MOUNTPOINT
       s3mount check [--json] [options] s3://BUCKET[/PREFIX]    prove every piece works, or say which is wrong
       s3mount policy [--read-only] [--principal ARN] [--external-id ID] s3://BUCKET[/PREFIX]
       s3mount status [--json] [MOUNTPOINT]                     what each mount is doing, and whether it is dead
       s3mount version

Mounts an S3 bucket (or a prefix of it) as a directory, with credentials from the EC2 instance
profile and optional chained AssumeRole hops: no access key anywhere.

Examples:
  s3mount s3://backups/host1 /mnt/backup --role-arn arn:aws:iam::222222222222:role/backup --external-id ab12
  s3mount -o ro,role_arn=arn:aws:iam::222222222222:role/reader s3://data /mnt/data
  s3mount --endpoint http://127.0.0.1:9000 --path-style s3://demo-bucket/team-a ./mnt

Every option is also accepted as -o name=value[,...] (the form fstab uses).
`)
	order, groups := optionGroups()
	for _, g := range order {
		fmt.Fprintf(&b, "\n%s options:\n", g)
		for _, o := range groups[g] {
			flag := "--" + dashed(o.name)
			if o.arg != "" {
				flag += " " + o.arg
			}
			fmt.Fprintf(&b, "  %-34s %s\n", flag, o.help)
		}
	}
	return b.String()
}
