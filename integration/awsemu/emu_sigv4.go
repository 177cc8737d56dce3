package awsemu

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sigv4Request is what a verified SigV4 request tells: who signed it, for which service.
type sigv4Request struct {
	AccessKey string
	Service   string
	Region    string
	Body      []byte
}

// errSignature and errSkew are verification failures, answered as AWS does.
var (
	errSignature = errors.New("SignatureDoesNotMatch")
	errSkew      = errors.New("RequestExpired")
)

// parseSigV4 reads the Authorization header and the body; verifySigV4 checks the signature with
// the secret key once the caller has looked the access key up.
func parseSigV4(r *http.Request) (*sigv4Request, map[string]string, error) {
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") {
		return nil, nil, errors.New("MissingAuthenticationToken")
	}
	fields := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 "), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || fields["SignedHeaders"] == "" || fields["Signature"] == "" {
		return nil, nil, errors.New("IncompleteSignature")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return &sigv4Request{AccessKey: scope[0], Region: scope[2], Service: scope[3], Body: body}, fields, nil
}

// verifySigV4 recomputes the signature of r per the SigV4 specification with secret.
func verifySigV4(r *http.Request, body []byte, fields map[string]string, secret string, now time.Time) error {
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return errSignature
	}
	if d := now.Sub(t); d > 15*time.Minute || d < -15*time.Minute {
		return errSkew
	}
	scope := strings.SplitN(fields["Credential"], "/", 2)[1]
	if !strings.HasPrefix(scope, t.Format("20060102")+"/") {
		return errSignature
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	var canonHeaders strings.Builder
	for _, h := range signed {
		v := append([]string(nil), r.Header.Values(h)...)
		switch {
		case strings.EqualFold(h, "host"):
			v = []string{r.Host}
		case strings.EqualFold(h, "content-length") && len(v) == 0:
			v = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
		for i := range v {
			v[i] = strings.Join(strings.Fields(v[i]), " ")
		}
		fmt.Fprintf(&canonHeaders, "%s:%s\n", strings.ToLower(h), strings.Join(v, ","))
	}
	payloadHash := r.Header.Get("X-Amz-Content-Sha256")
	if payloadHash == "" || payloadHash == "UNSIGNED-PAYLOAD" && r.Method == http.MethodPost {
		sum := sha256.Sum256(body)
		payloadHash = hex.EncodeToString(sum[:])
	}
	canonical := strings.Join([]string{
		r.Method,
		canonicalPath(r.URL.EscapedPath()),
		canonicalQuery(r.URL.Query()),
		canonHeaders.String(),
		fields["SignedHeaders"],
		payloadHash,
	}, "\n")
	crHash := sha256.Sum256([]byte(canonical))
	toSign := strings.Join([]string{"AWS4-HMAC-SHA256", amzDate, scope, hex.EncodeToString(crHash[:])}, "\n")
	parts := strings.Split(scope, "/") // date, region, service, aws4_request
	key := []byte("AWS4" + secret)
	for _, p := range parts {
		key = hmacSHA256(key, p)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return errSignature
	}
	return nil
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

func canonicalPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vals := append([]string(nil), q[k]...)
		sort.Strings(vals)
		for _, v := range vals {
			parts = append(parts, awsEscape(k)+"="+awsEscape(v))
		}
	}
	return strings.Join(parts, "&")
}

// awsEscape is URI encoding as SigV4 defines it: everything but unreserved characters.
func awsEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
