package creds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeIMDS is an instance metadata service in region, with one instance profile. v1Only makes it
// refuse tokens (404, which the SDK reads as "IMDSv1 only") and answer requests without one.
type fakeIMDS struct {
	region string
	v1Only bool

	mu       sync.Mutex
	untokend int // credential requests answered without a token
}

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
		if f.v1Only {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
		w.Write([]byte("tok"))
		return
	}
	token := r.Header.Get("X-Aws-Ec2-Metadata-Token") == "tok"
	if !token && !f.v1Only {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/latest/dynamic/instance-identity/document":
		fmt.Fprintf(w, `{"region":%q,"accountId":"111111111111","instanceId":"i-0fake"}`, f.region)
	case "/latest/meta-data/iam/security-credentials/":
		w.Write([]byte("profile"))
	case "/latest/meta-data/iam/security-credentials/profile":
		if !token {
			f.mu.Lock()
			f.untokend++
			f.mu.Unlock()
		}
		fmt.Fprintf(w, `{"Code":"Success","AccessKeyId":"AKIAFAKE","SecretAccessKey":"s","Token":"t","Expiration":%q}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	default:
		http.NotFound(w, r)
	}
}

// recordingClient passes requests to local servers and records, then refuses, the others.
type recordingClient struct {
	mu    sync.Mutex
	hosts []string
}

func (c *recordingClient) Do(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Host, "127.0.0.1:") {
		return http.DefaultClient.Do(r)
	}
	c.mu.Lock()
	c.hosts = append(c.hosts, r.URL.Host)
	c.mu.Unlock()
	return nil, errors.New("no network in this test")
}

// TestSTSIsCalledInTheInstanceRegion: the hops call STS's regional endpoint of the instance's
// region (from IMDS), not of the bucket's region given with --region.
func TestSTSIsCalledInTheInstanceRegion(t *testing.T) {
	clearAWSEnv(t)
	imds := httptest.NewServer(&fakeIMDS{region: "ap-southeast-2"})
	defer imds.Close()
	rec := &recordingClient{}
	c := Chain{Source: SourceIMDS, BucketRegion: "eu-west-1", IMDSEndpoint: imds.URL, HTTPClient: rec,
		Hops: []Hop{{RoleARN: "arn:aws:iam::222222222222:role/backup"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := c.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b.Region() != "ap-southeast-2" {
		t.Errorf("the chain's region is %q, want the instance's ap-southeast-2", b.Region())
	}
	if err := b.Verify(ctx); err == nil {
		t.Fatal("the hop succeeded without STS")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.hosts) == 0 || rec.hosts[0] != "sts.ap-southeast-2.amazonaws.com" {
		t.Errorf("STS was called at %v, want sts.ap-southeast-2.amazonaws.com (the instance's regional endpoint)", rec.hosts)
	}
}

// TestSTSRegionFallsBackToTheBucketsOffEC2: with neither the environment nor IMDS to tell the
// instance's region (a profile source), the hops use the bucket's region, not us-east-1.
func TestSTSRegionFallsBackToTheBucketsOffEC2(t *testing.T) {
	clearAWSEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAFAKE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	b, err := Chain{Source: SourceDefault, BucketRegion: "eu-west-1", HTTPClient: &recordingClient{}}.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b.Region() != "eu-west-1" {
		t.Errorf("region %q, want eu-west-1", b.Region())
	}
	t.Setenv("AWS_REGION", "us-west-2")
	if b, _ = (Chain{Source: SourceDefault, BucketRegion: "eu-west-1"}).Build(context.Background()); b.Region() != "us-west-2" {
		t.Errorf("region %q, want AWS_REGION's us-west-2", b.Region())
	}
}

// TestDefaultChainHasNoIMDSv1Fallback: credential_source=default reaches the instance profile
// through IMDSv2 only; an IMDS that answers only IMDSv1 gives no credentials unless AllowIMDSv1.
func TestDefaultChainHasNoIMDSv1Fallback(t *testing.T) {
	clearAWSEnv(t)
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprint("imdsv1=", allow), func(t *testing.T) {
			f := &fakeIMDS{region: "us-east-1", v1Only: true}
			srv := httptest.NewServer(f)
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			b, err := Chain{Source: SourceDefault, Region: "us-east-1", IMDSEndpoint: srv.URL, AllowIMDSv1: allow}.Build(ctx)
			if err != nil {
				t.Fatal(err)
			}
			err = b.Verify(ctx)
			f.mu.Lock()
			v1 := f.untokend
			f.mu.Unlock()
			if !allow && (err == nil || v1 > 0) {
				t.Errorf("without imdsv1: credentials through IMDSv1 (verify: %v, %d requests without a token)", err, v1)
			}
			if allow && (err != nil || v1 == 0) {
				t.Errorf("with imdsv1: verify %v after %d IMDSv1 requests", err, v1)
			}
		})
	}
}
