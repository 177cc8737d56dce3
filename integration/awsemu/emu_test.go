package awsemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

func signedRequest(t *testing.T, body string, creds aws.Credentials) *http.Request {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256Hex([]byte(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, sum, "sts", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestSigV4Verification(t *testing.T) {
	creds := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret", SessionToken: "tok"}
	check := func(req *http.Request, secret string) error {
		parsed, fields, err := parseSigV4(req)
		if err != nil {
			return err
		}
		return verifySigV4(req, parsed.Body, fields, secret, time.Now())
	}
	if err := check(signedRequest(t, "Action=GetCallerIdentity", creds), "secret"); err != nil {
		t.Errorf("good signature: %v", err)
	}
	if err := check(signedRequest(t, "Action=GetCallerIdentity", creds), "other-secret"); !errors.Is(err, errSignature) {
		t.Errorf("wrong secret: %v, want a signature mismatch", err)
	}
	tampered := signedRequest(t, "Action=GetCallerIdentity", creds)
	tampered.Body = ioNop("Action=AssumeRole")
	if err := check(tampered, "secret"); !errors.Is(err, errSignature) {
		t.Errorf("tampered body: %v, want a signature mismatch", err)
	}
	header := signedRequest(t, "Action=GetCallerIdentity", creds)
	header.Header.Set("X-Amz-Security-Token", "other")
	if err := check(header, "secret"); !errors.Is(err, errSignature) {
		t.Errorf("tampered signed header: %v, want a signature mismatch", err)
	}
	old := signedRequest(t, "Action=GetCallerIdentity", creds)
	parsed, fields, _ := parseSigV4(old)
	if err := verifySigV4(old, parsed.Body, fields, "secret", time.Now().Add(20*time.Minute)); !errors.Is(err, errSkew) {
		t.Errorf("20 minutes of clock skew: %v, want RequestExpired", err)
	}
}

func TestTrustDecision(t *testing.T) {
	const caller = "arn:aws:iam::111111111111:role/src"
	doc := func(principal, cond string) policy {
		s := `{"Statement":[{"Effect":"Allow","Principal":` + principal + `,"Action":"sts:AssumeRole"` + cond + `}]}`
		p, err := parsePolicy(json.RawMessage(s))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ext := `,"Condition":{"StringEquals":{"sts:ExternalId":"abc"}}`
	cases := []struct {
		name           string
		p              policy
		ctx            map[string]string
		allowed, named bool
	}{
		{"role named", doc(`{"AWS":"`+caller+`"}`, ""), nil, true, true},
		{"account root", doc(`{"AWS":"arn:aws:iam::111111111111:root"}`, ""), nil, true, false},
		{"bare account", doc(`{"AWS":"111111111111"}`, ""), nil, true, false},
		{"everyone", doc(`"*"`, ""), nil, true, false},
		{"other role", doc(`{"AWS":"arn:aws:iam::111111111111:role/other"}`, ""), nil, false, false},
		{"other account", doc(`{"AWS":"arn:aws:iam::222222222222:root"}`, ""), nil, false, false},
		{"External ID right", doc(`{"AWS":"`+caller+`"}`, ext), map[string]string{"sts:externalid": "abc"}, true, true},
		{"External ID wrong", doc(`{"AWS":"`+caller+`"}`, ext), map[string]string{"sts:externalid": "abd"}, false, false},
		{"External ID missing", doc(`{"AWS":"`+caller+`"}`, ext), nil, false, false},
	}
	for _, c := range cases {
		allowed, named := trustDecision(c.p, caller, "111111111111", c.ctx)
		if allowed != c.allowed || named != c.named {
			t.Errorf("%s: allowed=%v named=%v, want %v %v", c.name, allowed, named, c.allowed, c.named)
		}
	}
	deny, _ := parsePolicy(json.RawMessage(`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:*"},{"Effect":"Deny","Principal":{"AWS":"` + caller + `"},"Action":"sts:AssumeRole"}]}`))
	if allowed, _ := trustDecision(deny, caller, "111111111111", nil); allowed {
		t.Error("an explicit Deny must win over an Allow")
	}
}

func TestIdentityAndNarrowing(t *testing.T) {
	role, _ := parsePolicy(json.RawMessage(`{"Statement":[
		{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::b/team/*"},
		{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::2*:role/*"}]}`))
	if !identityAllows(role, "sts:AssumeRole", "arn:aws:iam::222222222222:role/x", nil) {
		t.Error("wildcard resource should allow")
	}
	if identityAllows(role, "sts:AssumeRole", "arn:aws:iam::333333333333:role/x", nil) {
		t.Error("resource outside the pattern allowed")
	}
	session, _ := parsePolicy(json.RawMessage(`{"Statement":[
		{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/team/sub/*"},
		{"Effect":"Allow","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/team/*"}]}`))
	got := narrow(role, session)
	if len(got.Statement) != 1 || got.Statement[0].Action[0] != "s3:GetObject" || got.Statement[0].Resource[0] != "arn:aws:s3:::b/team/sub/*" {
		t.Errorf("narrowed policy %+v: want only GetObject on team/sub/*", got.Statement)
	}
	if len(s3Only(role).Statement) != 1 {
		t.Error("s3Only kept a non-S3 statement")
	}
}

func ioNop(s string) *nopCloser { return &nopCloser{bytes.NewReader([]byte(s))} }

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
