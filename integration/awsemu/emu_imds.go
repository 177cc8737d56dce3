package awsemu

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serveIMDS answers like an EC2 instance with HttpTokens=required (IMDSv2 only).
func (s *Server) serveIMDS(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	up := s.imdsUp
	s.mu.Unlock()
	if !up {
		// Unreachable: drop the connection without an answer.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		http.Error(w, "", http.StatusServiceUnavailable)
		return
	}
	if r.URL.Path == "/latest/api/token" {
		s.mu.Lock()
		hang := s.tokenHang
		s.mu.Unlock()
		if hang {
			<-r.Context().Done() // the answer never arrives: the client times out
			return
		}
		s.imdsToken(w, r)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "", http.StatusMethodNotAllowed)
		return
	}
	if !s.validToken(r.Header.Get("X-aws-ec2-metadata-token")) {
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	cfg := s.opts.Config
	switch p := r.URL.Path; {
	case p == "/latest/meta-data/instance-id":
		w.Write([]byte(cfg.Instance.InstanceID))
	case p == "/latest/meta-data/placement/region":
		w.Write([]byte(cfg.Region))
	case p == "/latest/meta-data/placement/availability-zone":
		w.Write([]byte(cfg.Region + "a"))
	case p == "/latest/dynamic/instance-identity/document":
		acct := "000000000000"
		if role, ok := cfg.role(cfg.Instance.RoleARN); ok {
			acct = role.account()
		}
		_ = json.NewEncoder(w).Encode(map[string]string{
			"accountId": acct, "architecture": "x86_64", "availabilityZone": cfg.Region + "a",
			"imageId": "ami-0123456789abcdef0", "instanceId": cfg.Instance.InstanceID,
			"instanceType": "m6i.large", "privateIp": "10.0.0.10", "region": cfg.Region, "version": "2017-09-30",
		})
	case p == "/latest/meta-data/iam/security-credentials/" || p == "/latest/meta-data/iam/security-credentials":
		role, ok := cfg.role(cfg.Instance.RoleARN)
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(role.name()))
	case strings.HasPrefix(p, "/latest/meta-data/iam/security-credentials/"):
		s.imdsCredentials(w, r, strings.TrimPrefix(p, "/latest/meta-data/iam/security-credentials/"))
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) imdsToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		http.Error(w, "", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "", http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
	if err != nil || ttl < 1 || ttl > 21600 {
		http.Error(w, "", http.StatusBadRequest)
		return
	}
	token := randomID("AQAEA", 24)
	s.mu.Lock()
	s.tokens[token] = time.Now().Add(time.Duration(ttl) * time.Second)
	s.calls["IMDSToken"]++
	s.mu.Unlock()
	w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
	w.Write([]byte(token))
}

func (s *Server) validToken(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[token]
	return ok && time.Now().Before(exp)
}

// imdsCredentials serves the instance profile's credentials, rotating them before they expire
// as EC2 does (the same ones until close to their expiry).
func (s *Server) imdsCredentials(w http.ResponseWriter, r *http.Request, name string) {
	cfg := s.opts.Config
	role, ok := cfg.role(cfg.Instance.RoleARN)
	if !ok || name != role.name() {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	c := s.instance
	s.mu.Unlock()
	refreshBefore := 5 * time.Minute
	if s.opts.ReportedExpiry > 0 {
		refreshBefore = min(refreshBefore, s.opts.ReportedExpiry/3)
	}
	if c == nil || time.Until(c.expires) < refreshBefore {
		s.mu.Lock()
		perms, _ := parsePolicy(role.PermissionPolicy)
		s.mu.Unlock()
		var err error
		c, err = s.mint(r.Context(), role, cfg.Instance.InstanceID, 6*time.Hour, s3Only(perms), false, "")
		if err != nil {
			s.opts.Logf("imds: %v", err)
			http.Error(w, "", http.StatusInternalServerError)
			return
		}
		s.mu.Lock()
		s.instance = c
		s.mu.Unlock()
	}
	s.count("IMDSCredentials")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"Code": "Success", "LastUpdated": time.Now().UTC().Format(time.RFC3339), "Type": "AWS-HMAC",
		"AccessKeyId": c.accessKey, "SecretAccessKey": c.secret, "Token": c.token,
		"Expiration": c.expires.Format(time.RFC3339),
	})
}
