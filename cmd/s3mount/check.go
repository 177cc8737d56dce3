package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/s3mount/s3mount/creds"
	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/s3backend"
)

// Exit codes of `s3mount check`: the first stage that failed.
const (
	exitCheckSource = 21 // the source of credentials (IMDS, profile, environment)
	exitCheckHop    = 22 // an AssumeRole hop
	exitCheckS3     = 23 // S3 on the target bucket and prefix
)

// checkItem is one line of the checklist.
type checkItem struct {
	Stage string `json:"stage"` // "source", "hop", "s3"
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	// Warning: not needed to mount, but the mount is worse without it (OK stays true).
	Warning bool   `json:"warning,omitempty"`
	Detail  string `json:"detail,omitempty"`
	Fix     string `json:"fix,omitempty"`
	Cause   string `json:"cause,omitempty"`
}

// checkCommand runs the whole flow a mount depends on and prints a checklist:
//
//	s3mount check [--json] [mount options] s3://BUCKET[/PREFIX]
func checkCommand(args []string, stdout io.Writer) error {
	jsonOut := false
	var rest []string
	for _, a := range args {
		if a == "--json" {
			jsonOut = true
			continue
		}
		rest = append(rest, a)
	}
	// The same options as a mount; the mountpoint is not needed.
	c, err := parseConfig(append(rest, "/"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	items, code := runChecks(ctx, c)
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"ok": code == exitOK, "target": c.fs.FsName, "checks": items})
	} else {
		fmt.Fprintf(stdout, "Checking %s\n", c.fs.FsName)
		for _, it := range items {
			mark := "✓"
			switch {
			case !it.OK:
				mark = "✗"
			case it.Warning:
				mark = "!"
			}
			fmt.Fprintf(stdout, "%s %s", mark, it.Name)
			if it.Detail != "" {
				fmt.Fprintf(stdout, ": %s", it.Detail)
			}
			fmt.Fprintln(stdout)
			if it.Fix != "" {
				fmt.Fprintf(stdout, "    fix: %s\n", it.Fix)
			}
		}
	}
	if code != exitOK {
		return &cliError{code: code, err: errors.New("check failed")}
	}
	return nil
}

func runChecks(ctx context.Context, c *config) ([]checkItem, int) {
	c.chain.BucketRegion = c.region // STS is called in the instance's region, not the bucket's
	chain, err := c.chain.Build(ctx)
	if err != nil {
		item := checkItem{Stage: "source", Name: "credential chain", Detail: err.Error()}
		var se *creds.StepError
		if errors.As(err, &se) {
			item.Detail, item.Fix, item.Cause = se.Message, se.Fix, string(se.Cause)
			if se.Step != "" {
				item.Name = se.Step // the link that failed, e.g. the instance profile asked for the region
			}
		}
		return []checkItem{item}, exitCheckSource
	}
	var items []checkItem
	for _, r := range chain.Check(ctx, true) {
		stage := "hop"
		if r.IsSource {
			stage = "source"
		}
		it := checkItem{Stage: stage, Name: r.Name, OK: r.Err == nil}
		if r.Err != nil {
			it.Detail, it.Fix, it.Cause = r.Err.Message, r.Err.Fix, string(r.Err.Cause)
			if it.Detail == "" {
				it.Detail = r.Err.Error()
			}
			items = append(items, it)
			if r.IsSource {
				return items, exitCheckSource
			}
			return items, exitCheckHop
		}
		it.Detail = "acting as " + r.Identity
		if !r.Expires.IsZero() {
			it.Detail += fmt.Sprintf(", valid until %s", r.Expires.UTC().Format(time.RFC3339))
		}
		items = append(items, it)
	}
	b, err := c.newBackend(chain)
	if err != nil {
		return append(items, checkItem{Stage: "s3", Name: "S3 client", Detail: err.Error()}), exitCheckS3
	}
	s3items, ok := checkS3(ctx, b, c)
	items = append(items, s3items...)
	if !ok {
		return items, exitCheckS3
	}
	return items, exitOK
}

// checkS3 tries what a mount does on the target: region, listing, reading and, for read-write
// mounts, writing and multipart uploads, with a probe object it removes again.
func checkS3(ctx context.Context, b *s3backend.Backend, c *config) ([]checkItem, bool) {
	var items []checkItem
	failed := false
	target := fmt.Sprintf("s3://%s/%s", c.bucket, c.prefix)
	add := func(name string, err error, detail, fix string) bool {
		it := checkItem{Stage: "s3", Name: name, OK: err == nil, Detail: detail}
		if err != nil {
			if errors.Is(err, backend.ErrPermission) && strings.Contains(err.Error(), "VPC endpoint policy") {
				// S3 names the policy that denied: the VPC endpoint's, not the role's.
				fix = "a VPC endpoint policy denies it (S3 says so): allow it in the policy of the VPC endpoint this host reaches S3 through, " +
					"and check aws:SourceVpce conditions in the bucket policy; the role needs it too: " + fix
			}
			it.Detail, it.Fix = err.Error(), fix
			failed = true
		}
		items = append(items, it)
		return err == nil
	}
	bucketARN := "arn:aws:s3:::" + c.bucket
	objects := bucketARN + "/" + c.prefix + "*"
	region, err := b.BucketRegion(ctx)
	if s3backend.WrongRegion(err) {
		region, _ = b.LocateBucket(ctx) // needs no permission
	}
	if region != "" && region != c.s3.Region {
		err = fmt.Errorf("the bucket is in %s, not %s", region, c.s3.Region)
		if c.region == "" { // as the mount does (see openRoot): check the rest there
			if moved, merr := b.InRegion(region); merr == nil {
				b, err = moved, nil
				region = fmt.Sprintf("%s (not %s, where the mount first looks; it moves there)", region, c.s3.Region)
			}
		}
	}
	if errors.Is(err, backend.ErrPermission) && c.chain.Source == creds.SourceNone {
		// Public buckets seldom let everyone ask where they are; a listing in the wrong region
		// fails, so the one below proves it.
		err, region = nil, "not public; the listing below proves "+c.s3.Region
	}
	regionFix := fmt.Sprintf("pass --region %s (needs s3:GetBucketLocation on %s)", region, bucketARN)
	if unreachable(err) {
		regionFix = unreachableFix(c)
	}
	if !add("bucket region", err, region, regionFix) && !errors.Is(err, backend.ErrPermission) {
		return items, false
	}
	page, err := b.List(ctx, backend.ListInput{Prefix: c.prefix, MaxKeys: 1})
	if !add("list "+target, err, "ListObjectsV2 allowed", fmt.Sprintf("allow s3:ListBucket on %s with condition StringLike s3:prefix %q", bucketARN, c.prefix+"*")) {
		return items, false
	}
	if len(page.Objects) > 0 {
		key := page.Objects[0].Key
		body, err := b.Get(ctx, key, 0, 1, "")
		if err == nil {
			body.Close()
		}
		fix := "allow s3:GetObject on " + objects
		if err != nil && strings.Contains(strings.ToLower(err.Error()), "kms") {
			fix = "allow kms:Decrypt on the KMS key the object is encrypted with (in the key's policy and the role's), as well as s3:GetObject on " + objects
		}
		if !add("read "+key, err, "GetObject allowed", fix) {
			return items, false
		}
	} else {
		add("read", nil, "no object under the prefix to try a read on", "")
	}
	if c.fs.ReadOnly {
		return items, !failed
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	probe := c.prefix + ".s3mount-check-" + hex.EncodeToString(nonce[:])
	_, err = b.Put(ctx, probe, bytes.NewReader([]byte("probe")), 5, backend.PutOptions{})
	fix := "allow s3:PutObject on " + objects + " (or mount read-only with --ro)"
	if err != nil && errors.Is(err, backend.ErrPermission) && (c.s3.SSE == "aws:kms" || strings.Contains(strings.ToLower(err.Error()), "kms")) {
		key := c.s3.SSEKMSKeyID
		if key == "" {
			key = "the bucket's or account's S3 key"
		}
		fix = "with SSE-KMS, S3 needs the KMS key too: allow kms:GenerateDataKey and kms:Decrypt on " + key +
			" (in the key's policy and the role's), as well as s3:PutObject on " + objects
	}
	if !add("write "+probe, err, "PutObject allowed", fix) {
		return items, false
	}
	err = b.Delete(ctx, probe)
	if !add("delete "+probe, err, "DeleteObject allowed", "allow s3:DeleteObject on "+objects) {
		return items, false
	}
	u, err := b.NewUpload(ctx, probe, backend.PutOptions{})
	if err == nil {
		err = u.Abort(ctx)
		if err != nil {
			err = fmt.Errorf("abort: %w", err)
		}
	}
	fix = "allow s3:PutObject and s3:AbortMultipartUpload on " + objects
	if err != nil && strings.Contains(err.Error(), "abort") {
		fix = "allow s3:AbortMultipartUpload on " + objects
	}
	if !add("multipart upload", err, "CreateMultipartUpload and AbortMultipartUpload allowed", fix) {
		return items, false
	}
	items = append(items, checkUploadCleanup(ctx, b, c, probe)...)
	return items, !failed
}

// unreachable reports whether err is a failure to reach the endpoint at all (refused, timed out,
// no such host), rather than an answer.
func unreachable(err error) bool {
	if err == nil {
		return false
	}
	var op *net.OpError
	var dns *net.DNSError
	if errors.As(err, &op) || errors.As(err, &dns) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "dial tcp") || strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "no such host")
}

// unreachableFix says what to check when S3 cannot be reached.
func unreachableFix(c *config) string {
	return fmt.Sprintf("S3 at %s cannot be reached: from a subnet without internet access add a gateway VPC endpoint for S3 "+
		"to its route table, or use an interface endpoint with --endpoint https://bucket.vpce-ID.s3.REGION.vpce.amazonaws.com; "+
		"check the security group, a proxy (HTTPS_PROXY, NO_PROXY) and --endpoint", endpointName(c))
}

// checkUploadCleanup checks what keeps incomplete multipart uploads from being left behind: the
// listing the mount sweeps with after an unconfirmed start, and a lifecycle rule that aborts what
// no mount cleaned. Neither is needed to mount, so a lack of either is a warning.
func checkUploadCleanup(ctx context.Context, b *s3backend.Backend, c *config, probe string) []checkItem {
	bucketARN := "arn:aws:s3:::" + c.bucket
	warn := func(name, detail, fix string) checkItem {
		return checkItem{Stage: "s3", Name: name, OK: true, Warning: true, Detail: detail, Fix: fix}
	}
	var items []checkItem
	if _, err := b.ListUploads(ctx, probe); err != nil {
		items = append(items, warn("list multipart uploads", err.Error()+"; uploads whose start S3 did not confirm are left to the lifecycle rule",
			"allow s3:ListBucketMultipartUploads on "+bucketARN))
	} else {
		items = append(items, checkItem{Stage: "s3", Name: "list multipart uploads", OK: true, Detail: "ListMultipartUploads allowed"})
	}
	lifecycle := "add the rule `s3mount policy --only lifecycle " + c.fs.FsName + "` prints to the bucket's lifecycle configuration (put-bucket-lifecycle-configuration replaces the rules there)"
	switch days, err := b.UploadExpiry(ctx, c.prefix); {
	case err != nil:
		items = append(items, warn("lifecycle rule", "cannot read the bucket's lifecycle configuration: "+err.Error(),
			"allow s3:GetLifecycleConfiguration on "+bucketARN+" (optional; only this check uses it)"))
	case days == 0:
		items = append(items, warn("lifecycle rule", "no AbortIncompleteMultipartUpload rule covers the prefix: uploads a crashed or unreachable mount could not abort are billed until someone does", lifecycle))
	default:
		items = append(items, checkItem{Stage: "s3", Name: "lifecycle rule", OK: true, Detail: fmt.Sprintf("incomplete multipart uploads are aborted after %d days", days)})
	}
	return items
}
