package awsemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Options configures the emulator.
type Options struct {
	Config            *Config
	MinIOEndpoint     string
	MinIORootUser     string
	MinIORootPassword string
	// ReportedExpiry, when > 0, makes every credential handed out (IMDS and AssumeRole) report an
	// Expiration of now+ReportedExpiry, shorter than its real MinIO lifetime, so that refresh can
	// be tested in seconds. The emulator also treats the credential as expired from then on
	// (ExpiredToken), as AWS would.
	ReportedExpiry time.Duration
	// Logf receives one line per request (never secrets); nil discards.
	Logf func(format string, args ...any)
}

// issued is a credential the emulator handed out.
type issued struct {
	accessKey      string
	secret, token  string
	role           *Role
	session        string
	expires        time.Time // as reported
	chained        bool      // obtained with AssumeRole (role chaining), not from the instance profile
	sourceIdentity string
}

// arn is the identity the credential acts as.
func (c *issued) arn() string {
	return fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", c.role.account(), c.role.name(), c.session)
}

// Server is a running emulator.
type Server struct {
	opts  Options
	minio *sts.Client // MinIO's STS, as its root user

	imdsLn, stsLn net.Listener
	imdsSrv       *http.Server
	stsSrv        *http.Server

	mu       sync.Mutex // protects the following
	creds    map[string]*issued
	tokens   map[string]time.Time // IMDSv2 session tokens and their expiry
	instance *issued              // current instance profile credentials
	calls    map[string]int
	imdsUp   bool
	stsUp    bool
	// tokenHang makes IMDSv2 token requests hang while everything else answers: what a container
	// behind an instance with an HTTP PUT response hop limit of 1 sees.
	tokenHang bool
}

// Start starts the IMDS and STS listeners on 127.0.0.1.
func Start(o Options) (*Server, error) {
	if o.Config == nil {
		return nil, fmt.Errorf("awsemu: no config")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	s := &Server{
		opts: o, creds: map[string]*issued{}, tokens: map[string]time.Time{}, calls: map[string]int{},
		imdsUp: true, stsUp: true,
		minio: sts.New(sts.Options{
			Region:       "us-east-1",
			BaseEndpoint: aws.String(o.MinIOEndpoint),
			Credentials:  credentials.NewStaticCredentialsProvider(o.MinIORootUser, o.MinIORootPassword, ""),
		}),
	}
	var err error
	if s.imdsLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	if s.stsLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		s.imdsLn.Close()
		return nil, err
	}
	s.imdsSrv = &http.Server{Handler: http.HandlerFunc(s.serveIMDS), ReadHeaderTimeout: 10 * time.Second}
	s.stsSrv = &http.Server{Handler: http.HandlerFunc(s.serveSTS), ReadHeaderTimeout: 10 * time.Second}
	go s.imdsSrv.Serve(s.imdsLn)
	go s.stsSrv.Serve(s.stsLn)
	return s, nil
}

// IMDSEndpoint is the address to give as AWS_EC2_METADATA_SERVICE_ENDPOINT.
func (s *Server) IMDSEndpoint() string { return "http://" + s.imdsLn.Addr().String() }

// STSEndpoint is the STS (and IAM) endpoint URL.
func (s *Server) STSEndpoint() string { return "http://" + s.stsLn.Addr().String() }

// Close stops both listeners.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.imdsSrv.Shutdown(ctx)
	return s.stsSrv.Shutdown(ctx)
}

// Calls returns how many requests of a kind were answered: "AssumeRole", "GetCallerIdentity",
// "GetRole", "IMDSToken", "IMDSCredentials" (successful ones for the last two).
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// SetIMDSAvailable makes IMDS drop every connection (as if unreachable) or serve again.
func (s *Server) SetIMDSAvailable(up bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.imdsUp = up
}

// SetTokenHang makes IMDS token requests hang (the hop-limit problem of containers).
func (s *Server) SetTokenHang(hang bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenHang = hang
}

// SetSTSAvailable makes STS answer 503 ServiceUnavailable, or serve again.
func (s *Server) SetSTSAvailable(up bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stsUp = up
}

// SetPermissionPolicy replaces a role's permission policy; credentials minted afterwards (and
// every later authorization decision) use it. Credentials already minted keep the old S3
// permissions until they expire, as with AWS.
func (s *Server) SetPermissionPolicy(roleARN string, doc json.RawMessage) error {
	return s.setPolicy(roleARN, doc, func(r *Role) { r.PermissionPolicy = doc })
}

// setPolicy validates doc and applies set to the role.
func (s *Server) setPolicy(roleARN string, doc json.RawMessage, set func(*Role)) error {
	if _, err := parsePolicy(doc); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.opts.Config.role(roleARN)
	if !ok {
		return fmt.Errorf("no role %s", roleARN)
	}
	set(r)
	return nil
}

// PermissionPolicy returns a role's current permission policy.
func (s *Server) PermissionPolicy(roleARN string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.opts.Config.role(roleARN)
	if !ok {
		return nil, false
	}
	return r.PermissionPolicy, true
}

// SetTrustPolicy replaces a role's trust policy.
func (s *Server) SetTrustPolicy(roleARN string, doc json.RawMessage) error {
	return s.setPolicy(roleARN, doc, func(r *Role) { r.TrustPolicy = doc })
}

func (s *Server) count(action string) {
	s.mu.Lock()
	s.calls[action]++
	s.mu.Unlock()
}

func randomID(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + strings.ToUpper(hex.EncodeToString(b))
}

// mint obtains credentials for role from MinIO with the given S3 permissions, and records them.
// duration is the session length asked for; the credential reports an expiry of at most that.
func (s *Server) mint(ctx context.Context, role *Role, session string, duration time.Duration, perms policy, chained bool, sourceIdentity string) (*issued, error) {
	if len(perms.Statement) == 0 {
		// MinIO treats an empty session policy as "no restriction"; a role without S3
		// permissions must get none.
		perms = policy{Version: "2012-10-17", Statement: []statement{{Effect: "Deny", Action: strList{"s3:*"}, Resource: strList{"arn:aws:s3:::*"}}}}
	}
	doc, _ := json.Marshal(perms)
	minioDuration := max(duration, 15*time.Minute)
	out, err := s.minio.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:         aws.String("arn:minio:iam:::role/emulated"),
		RoleSessionName: aws.String("awsemu"),
		DurationSeconds: aws.Int32(int32(minioDuration / time.Second)),
		Policy:          aws.String(string(doc)),
	})
	if err != nil {
		return nil, fmt.Errorf("minting credentials from MinIO: %w", err)
	}
	expires := time.Now().Add(duration)
	if real := aws.ToTime(out.Credentials.Expiration); real.Before(expires) {
		expires = real
	}
	if s.opts.ReportedExpiry > 0 && time.Now().Add(s.opts.ReportedExpiry).Before(expires) {
		expires = time.Now().Add(s.opts.ReportedExpiry)
	}
	c := &issued{
		accessKey: aws.ToString(out.Credentials.AccessKeyId),
		secret:    aws.ToString(out.Credentials.SecretAccessKey), token: aws.ToString(out.Credentials.SessionToken),
		role: role, session: session, expires: expires.UTC().Truncate(time.Second), chained: chained, sourceIdentity: sourceIdentity,
	}
	s.mu.Lock()
	s.creds[aws.ToString(out.Credentials.AccessKeyId)] = c
	s.mu.Unlock()
	return c, nil
}
