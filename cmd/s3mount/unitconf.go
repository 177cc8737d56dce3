package main

// A config file may name what to mount and where (source=, mountpoint=), so that one file is a
// whole mount: the systemd template unit runs `s3mount -f --config /etc/s3mount/NAME.conf`, and
// an fstab line needs only config=. Arguments on the command line take precedence.
func init() {
	optionTable = append(optionTable,
		option{"source", "s3://BUCKET[/PREFIX]", "Mount", "what to mount, for a config file that is a whole mount (instead of the first argument)", func(c *config, v string) error { c.source = v; return nil }},
		option{"mountpoint", "DIR", "Mount", "where to mount it, for a config file that is a whole mount (instead of the last argument)", func(c *config, v string) error { c.mountpointOpt = v; return nil }},
	)
}

// targets returns the source and the mountpoint: the two arguments, or what the options give
// for those not on the command line.
func (c *config) targets(positional []string) (source, mountpoint string, err error) {
	switch {
	case len(positional) == 2:
		return positional[0], positional[1], nil
	case len(positional) == 1 && c.source != "":
		return c.source, positional[0], nil
	case len(positional) == 0 && c.source != "" && c.mountpointOpt != "":
		return c.source, c.mountpointOpt, nil
	}
	return "", "", fail(exitUsage, "expected a bucket and a mountpoint, got %d arguments (usage: s3mount [options] s3://BUCKET[/PREFIX] MOUNTPOINT, or source= and mountpoint= in a --config file)", len(positional))
}
