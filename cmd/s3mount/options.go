package main

import (
	"fmt"
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
	{"region", "REGION", "S3", "bucket region; default from the environment or the instance", func(c *config, v string) error { c.region = v; return nil }},
	{"path_style", "", "S3", "address the bucket as endpoint/bucket (most S3-compatible servers)", func(c *config, v string) error { c.s3.PathStyle = true; return nil }},

	{"credential_source", "imds|default", "Credentials", "first link of the chain: the instance profile (imds, the default) or the standard AWS chain", func(c *config, v string) error {
		c.chain.Source = creds.Source(v)
		return nil
	}},
	{"profile", "NAME", "Credentials", "shared-config profile (implies credential_source=default)", func(c *config, v string) error {
		c.chain.Source, c.chain.Profile = creds.SourceDefault, v
		return nil
	}},
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

	{"ro", "", "Mount", "mount read-only", func(c *config, v string) error { c.fs.ReadOnly = true; return nil }},
	{"foreground", "", "Mount", "stay in the foreground (-f)", func(c *config, v string) error { c.foreground = true; return nil }},
	{"debug", "", "Mount", "log debug messages (never secrets)", func(c *config, v string) error { c.debug = true; return nil }},
	{"debug_fuse", "", "Mount", "log every FUSE request", func(c *config, v string) error { c.fs.Debug = true; return nil }},
	{"allow_other", "", "Mount", "let other users access the mount", func(c *config, v string) error { c.fs.AllowOther = true; return nil }},
	{"nonempty", "", "Mount", "allow mounting over a non-empty directory", func(c *config, v string) error { c.nonEmpty = true; return nil }},
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
				return nil, nil, unknownOption(a)
			}
			if o.arg != "" && !hasValue {
				if i+1 == len(args) {
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

// splitOptionList splits "a,b=c,d=\"x,y\"" into settings. A value in double quotes may contain
// commas (External IDs may).
func splitOptionList(s string) ([]setting, error) {
	var out []setting
	for s != "" {
		var item string
		name, rest, _ := strings.Cut(s, "=")
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

func unknownOption(name string) error {
	return fmt.Errorf("unknown option %q (see s3mount --help)", name)
}

func dashed(name string) string { return strings.ReplaceAll(name, "_", "-") }

// apply applies settings in order to c.
func (c *config) apply(settings []setting) error {
	for _, s := range settings {
		o, ok := findOption(s.name)
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

// usage renders the option table grouped by topic.
func usage() string {
	var b strings.Builder
	b.WriteString(`Usage: s3mount [options] s3://BUCKET[/PREFIX] MOUNTPOINT

Mounts an S3 bucket (or a prefix of it) as a directory, with credentials from the EC2 instance
profile and optional chained AssumeRole hops: no access key anywhere.

Examples:
  s3mount s3://backups/host1 /mnt/backup --role-arn arn:aws:iam::222222222222:role/backup --external-id ab12
  s3mount -o ro,role_arn=arn:aws:iam::222222222222:role/reader s3://data /mnt/data
  s3mount --endpoint http://127.0.0.1:9000 --path-style s3://demo-bucket/team-a ./mnt

Every option is also accepted as -o name=value[,...] (the form fstab uses).
`)
	groups := map[string][]option{}
	var order []string
	for _, o := range optionTable {
		if _, ok := groups[o.group]; !ok {
			order = append(order, o.group)
		}
		groups[o.group] = append(groups[o.group], o)
	}
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
