package s3backend

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// lifecycleStub answers GetBucketLifecycleConfiguration with rules, or with err.
type lifecycleStub struct {
	API
	rules []types.LifecycleRule
	err   error
}

func (s lifecycleStub) GetBucketLifecycleConfiguration(context.Context, *s3.GetBucketLifecycleConfigurationInput, ...func(*s3.Options)) (*s3.GetBucketLifecycleConfigurationOutput, error) {
	return &s3.GetBucketLifecycleConfigurationOutput{Rules: s.rules}, s.err
}

func abortAfter(days int32, status types.ExpirationStatus, filter *types.LifecycleRuleFilter) types.LifecycleRule {
	return types.LifecycleRule{Status: status, Filter: filter,
		AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(days)}}
}

// UploadExpiry finds the enabled AbortIncompleteMultipartUpload rule that covers the prefix.
func TestUploadExpiry(t *testing.T) {
	for _, c := range []struct {
		name string
		stub lifecycleStub
		want int32
	}{
		{"no configuration", lifecycleStub{err: &smithy.GenericAPIError{Code: "NoSuchLifecycleConfiguration"}}, 0},
		{"whole bucket", lifecycleStub{rules: []types.LifecycleRule{abortAfter(7, types.ExpirationStatusEnabled, &types.LifecycleRuleFilter{})}}, 7},
		{"covering prefix", lifecycleStub{rules: []types.LifecycleRule{abortAfter(3, types.ExpirationStatusEnabled, &types.LifecycleRuleFilter{Prefix: aws.String("team/")})}}, 3},
		{"other prefix", lifecycleStub{rules: []types.LifecycleRule{abortAfter(3, types.ExpirationStatusEnabled, &types.LifecycleRuleFilter{Prefix: aws.String("other/")})}}, 0},
		{"disabled", lifecycleStub{rules: []types.LifecycleRule{abortAfter(3, types.ExpirationStatusDisabled, nil)}}, 0},
		{"tag filter", lifecycleStub{rules: []types.LifecycleRule{abortAfter(3, types.ExpirationStatusEnabled, &types.LifecycleRuleFilter{Tag: &types.Tag{Key: aws.String("k"), Value: aws.String("v")}})}}, 0},
	} {
		b := NewWithAPI(Config{Bucket: "bkt"}, c.stub)
		got, err := b.UploadExpiry(context.Background(), "team/x/")
		if err != nil || got != c.want {
			t.Errorf("%s: %d days (%v), want %d", c.name, got, err, c.want)
		}
	}
}
