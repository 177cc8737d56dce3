package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// policyCommand prints the least-privilege IAM policies for a mount: the permission policy of the
// role the mount ends with, and that role's trust policy.
//
//	s3mount policy [--read-only] [--principal ARN] [--external-id ID] [--only permission|trust] s3://BUCKET[/PREFIX]
//
// It prints one JSON object {"PermissionPolicy": ..., "TrustPolicy": ..., "LifecycleConfiguration":
// ...}, or with --only the one document, ready to paste into IAM (or, for the lifecycle
// configuration, aws s3api put-bucket-lifecycle-configuration).
func policyCommand(args []string, stdout io.Writer) error {
	var readOnly bool
	var principal, externalID, target, only string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		name = strings.ReplaceAll(name, "-", "_")
		needValue := func() (string, error) {
			if hasValue {
				return value, nil
			}
			if i+1 == len(args) {
				return "", fail(exitUsage, "policy: %s needs a value", a)
			}
			i++
			return args[i], nil
		}
		var err error
		switch {
		case !strings.HasPrefix(a, "-"):
			target = a
		case name == "read_only" || name == "ro":
			readOnly = true
		case name == "principal":
			principal, err = needValue()
		case name == "external_id":
			externalID, err = needValue()
		case name == "only":
			only, err = needValue()
			if err == nil && only != "permission" && only != "trust" && only != "lifecycle" {
				err = fail(exitUsage, "policy: --only takes permission, trust or lifecycle, not %q", only)
			}
		default:
			err = fail(exitUsage, "policy: unknown option %s (want --read-only, --principal ARN, --external-id ID, --only permission|trust|lifecycle)", a)
		}
		if err != nil {
			return err
		}
	}
	if target == "" {
		return fail(exitUsage, "usage: s3mount policy [--read-only] [--principal ARN] [--external-id ID] s3://BUCKET[/PREFIX]")
	}
	bucket, prefix, err := parseTarget(target)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	if principal == "" && only == "trust" {
		return fail(exitUsage, "policy: the trust policy needs --principal (the ARN of the role or account s3mount runs as)")
	}
	var out any = map[string]any{"PermissionPolicy": permissionPolicy(bucket, prefix, readOnly)}
	if !readOnly {
		out.(map[string]any)["LifecycleConfiguration"] = lifecycleRule(prefix)
	}
	switch {
	case only == "permission":
		out = permissionPolicy(bucket, prefix, readOnly)
	case only == "lifecycle":
		out = lifecycleRule(prefix)
	case only == "trust":
		out = trustPolicy(principal, externalID)
	case principal != "":
		out.(map[string]any)["TrustPolicy"] = trustPolicy(principal, externalID)
	}
	doc, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintf(stdout, "%s\n", doc)
	return nil
}

type policy struct {
	Version   string
	Statement []statement
}

type statement struct {
	Sid       string
	Effect    string
	Principal map[string]string            `json:",omitempty"`
	Action    []string                     `json:""`
	Resource  []string                     `json:",omitempty"`
	Condition map[string]map[string]string `json:",omitempty"`
}

// permissionPolicy is what a mount of bucket/prefix needs, and no more: listing limited to the
// prefix, the bucket's region, object access under the prefix (with multipart uploads and their
// cleanup when writable). Each statement is proven necessary by a step of `s3mount check`.
func permissionPolicy(bucket, prefix string, readOnly bool) policy {
	bucketARN := "arn:aws:s3:::" + bucket
	objects := bucketARN + "/" + prefix + "*"
	list := statement{Sid: "ListPrefix", Effect: "Allow", Action: []string{"s3:ListBucket"}, Resource: []string{bucketARN}}
	if prefix != "" {
		list.Condition = map[string]map[string]string{"StringLike": {"s3:prefix": prefix + "*"}}
	}
	p := policy{Version: "2012-10-17", Statement: []statement{
		list,
		{Sid: "BucketRegion", Effect: "Allow", Action: []string{"s3:GetBucketLocation"}, Resource: []string{bucketARN}},
		{Sid: "ReadObjects", Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: []string{objects}},
	}}
	if !readOnly {
		// Multipart uploads need s3:PutObject. The two statements after it are optional (a
		// missing one is a warning of `s3mount check`): the mount lists a key's uploads to abort
		// those whose start S3 did not confirm (ListBucketMultipartUploads takes no prefix
		// condition), and check reads the lifecycle rule that aborts what no mount could.
		p.Statement = append(p.Statement,
			statement{Sid: "WriteObjects", Effect: "Allow", Action: []string{"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}, Resource: []string{objects}},
			statement{Sid: "CleanUploads", Effect: "Allow", Action: []string{"s3:ListBucketMultipartUploads"}, Resource: []string{bucketARN}},
			statement{Sid: "ReadLifecycle", Effect: "Allow", Action: []string{"s3:GetLifecycleConfiguration"}, Resource: []string{bucketARN}})
	}
	return p
}

// uploadExpiryDays is after how many days the lifecycle rule aborts an incomplete upload: well
// beyond the longest upload (5 TiB at 100 MB/s takes some 15 hours), as AWS suggests.
const uploadExpiryDays = 7

// lifecycleRule is the bucket lifecycle configuration that aborts incomplete multipart uploads
// under prefix that no mount aborted (one killed while S3 was unreachable, and not mounted again).
func lifecycleRule(prefix string) any {
	return map[string]any{"Rules": []any{map[string]any{
		"ID":                             "s3mount-abort-incomplete-uploads",
		"Status":                         "Enabled",
		"Filter":                         map[string]string{"Prefix": prefix},
		"AbortIncompleteMultipartUpload": map[string]int{"DaysAfterInitiation": uploadExpiryDays},
	}}}
}

// trustPolicy lets principal assume the role, with the External ID if one is given.
func trustPolicy(principal, externalID string) policy {
	st := statement{Sid: "TrustS3mountHost", Effect: "Allow", Principal: map[string]string{"AWS": principal}, Action: []string{"sts:AssumeRole"}}
	if externalID != "" {
		st.Condition = map[string]map[string]string{"StringEquals": {"sts:ExternalId": externalID}}
	}
	return policy{Version: "2012-10-17", Statement: []statement{st}}
}
