package awsemu

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const (
	stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"
	iamNS = "https://iam.amazonaws.com/doc/2010-05-08/"
)

var (
	sessionNameRe = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	externalIDRe  = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
)

// apiError is an error answered in AWS's Query-protocol XML.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func denied(caller *issued, action, resource string) *apiError {
	return &apiError{http.StatusForbidden, "AccessDenied",
		fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s", caller.arn(), action, resource)}
}

func validation(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "ValidationError", msg}
}

func (s *Server) writeError(w http.ResponseWriter, ns string, e *apiError) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.status)
	typ := "Sender"
	if e.status >= 500 {
		typ = "Receiver"
	}
	fmt.Fprintf(w, `<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
		ns, typ, e.code, xmlEscape(e.message), randomID("", 8))
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (s *Server) writeResult(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "text/xml")
	out, _ := xml.Marshal(v)
	w.Write(out)
}

// serveSTS answers STS and IAM Query API requests, which must be signed with credentials the
// emulator issued.
func (s *Server) serveSTS(w http.ResponseWriter, r *http.Request) {
	ns := stsNS
	s.mu.Lock()
	up := s.stsUp
	s.mu.Unlock()
	if !up {
		s.writeError(w, ns, &apiError{http.StatusServiceUnavailable, "ServiceUnavailable", "Service is unavailable."})
		return
	}
	if r.Method == http.MethodPost && r.Header.Get("Authorization") == "" {
		// AssumeRoleWithWebIdentity is the one unsigned STS call: the token is the proof.
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		form, _ := url.ParseQuery(string(body))
		if form.Get("Action") == "AssumeRoleWithWebIdentity" {
			out, aerr := s.assumeRoleWithWebIdentity(r, form)
			if aerr != nil {
				s.opts.Logf("sts: AssumeRoleWithWebIdentity refused: %s", aerr.code)
				s.writeError(w, ns, aerr)
				return
			}
			s.count("AssumeRoleWithWebIdentity")
			s.writeResult(w, out)
			return
		}
	}
	req, fields, err := parseSigV4(r)
	if err != nil {
		s.writeError(w, ns, &apiError{http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token"})
		return
	}
	if req.Service == "iam" {
		ns = iamNS
	}
	form, _ := url.ParseQuery(string(req.Body))
	for k, v := range r.URL.Query() {
		form[k] = v
	}
	caller, aerr := s.authenticate(r, req, fields)
	action := form.Get("Action")
	if aerr == nil {
		switch {
		case req.Service == "sts" && action == "GetCallerIdentity":
			s.count(action)
			s.writeResult(w, callerIdentityResponse(caller))
			s.opts.Logf("sts: GetCallerIdentity by %s", caller.arn())
			return
		case req.Service == "sts" && action == "AssumeRole":
			var out any
			out, aerr = s.assumeRole(r, caller, form)
			if aerr == nil {
				s.count(action)
				s.writeResult(w, out)
				s.opts.Logf("sts: AssumeRole of %s by %s", form.Get("RoleArn"), caller.arn())
				return
			}
		case req.Service == "iam" && action == "GetRole":
			var out any
			out, aerr = s.getRole(caller, form.Get("RoleName"))
			if aerr == nil {
				s.count(action)
				s.writeResult(w, out)
				return
			}
		default:
			aerr = &apiError{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", action, form.Get("Version"))}
		}
	}
	s.opts.Logf("sts: %s refused: %s", action, aerr.code)
	s.writeError(w, ns, aerr)
}

// authenticate finds and checks the credential that signed the request.
func (s *Server) authenticate(r *http.Request, req *sigv4Request, fields map[string]string) (*issued, *apiError) {
	s.mu.Lock()
	c, ok := s.creds[req.AccessKey]
	s.mu.Unlock()
	if !ok || r.Header.Get("X-Amz-Security-Token") != c.token {
		return nil, &apiError{http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."}
	}
	if err := verifySigV4(r, req.Body, fields, c.secret, time.Now()); err != nil {
		if errors.Is(err, errSkew) {
			return nil, &apiError{http.StatusForbidden, "SignatureDoesNotMatch", "Signature expired: the request time is more than 15 minutes off."}
		}
		return nil, &apiError{http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."}
	}
	if time.Now().After(c.expires) {
		return nil, &apiError{http.StatusBadRequest, "ExpiredToken", "The security token included in the request is expired"}
	}
	return c, nil
}

type xmlCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string
	SessionToken    string
	Expiration      string
}

type assumeRoleResponse struct {
	XMLName xml.Name `xml:"AssumeRoleResponse"`
	NS      string   `xml:"xmlns,attr"`
	Result  struct {
		Credentials     xmlCredentials
		AssumedRoleUser struct {
			Arn           string
			AssumedRoleID string `xml:"AssumedRoleId"`
		}
		PackedPolicySize int    `xml:",omitempty"`
		SourceIdentity   string `xml:",omitempty"`
	} `xml:"AssumeRoleResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type callerIdentity struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	NS      string   `xml:"xmlns,attr"`
	Result  struct {
		Arn     string
		UserID  string `xml:"UserId"`
		Account string
	} `xml:"GetCallerIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

func roleID(r *Role) string {
	return "AROA" + strings.ToUpper(hexString(r.ARN))[:17]
}

func hexString(s string) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		out = append(out, digits[s[i]>>4], digits[s[i]&15])
	}
	return string(out)
}

func callerIdentityResponse(c *issued) callerIdentity {
	var out callerIdentity
	out.NS = stsNS
	out.Result.Arn = c.arn()
	out.Result.UserID = roleID(c.role) + ":" + c.session
	out.Result.Account = c.role.account()
	out.RequestID = randomID("", 8)
	return out
}

// assumeRole enforces what AWS enforces and mints the session.
func (s *Server) assumeRole(r *http.Request, caller *issued, form url.Values) (any, *apiError) {
	roleARN, session, extID := form.Get("RoleArn"), form.Get("RoleSessionName"), form.Get("ExternalId")
	if !sessionNameRe.MatchString(session) {
		return nil, validation("1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length 2-64")
	}
	if _, ok := form["ExternalId"]; ok && (len(extID) < 2 || len(extID) > 1224 || !externalIDRe.MatchString(extID)) {
		return nil, validation("1 validation error detected: Value at 'externalId' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@:\\/-]* and have length 2-1224")
	}
	duration := time.Hour
	if d := form.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 900 {
			return nil, validation("1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900")
		}
		duration = time.Duration(n) * time.Second
	}
	s.mu.Lock()
	role, ok := s.opts.Config.role(roleARN)
	var trust, callerPerms, rolePerms policy
	if ok {
		trust, _ = parsePolicy(role.TrustPolicy)
		rolePerms, _ = parsePolicy(role.PermissionPolicy)
	}
	callerPerms, _ = parsePolicy(caller.role.PermissionPolicy)
	s.mu.Unlock()
	if !ok {
		return nil, denied(caller, "sts:AssumeRole", roleARN)
	}
	if caller.chained && duration > time.Hour {
		return nil, validation("The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.")
	}
	if duration > time.Duration(role.MaxSessionDuration)*time.Second {
		return nil, validation("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
	}
	ctx := map[string]string{"aws:principalarn": caller.role.ARN, "aws:principalaccount": caller.role.account()}
	if _, ok := form["ExternalId"]; ok {
		ctx["sts:externalid"] = extID
	}
	if si := form.Get("SourceIdentity"); si != "" {
		ctx["sts:sourceidentity"] = si
	} else if caller.sourceIdentity != "" {
		ctx["sts:sourceidentity"] = caller.sourceIdentity
	}
	allowed, namedRole := trustDecision(trust, caller.role.ARN, caller.role.account(), ctx)
	// The caller's own policy must allow sts:AssumeRole on the role, unless the trust policy names
	// the caller's role explicitly within the same account (then the trust policy alone grants it).
	needIdentity := !namedRole || caller.role.account() != role.account()
	if !allowed || (needIdentity && !identityAllows(callerPerms, "sts:AssumeRole", role.ARN, ctx)) {
		return nil, denied(caller, "sts:AssumeRole", role.ARN)
	}
	var sessionPolicy policy
	if doc := form.Get("Policy"); doc != "" {
		var err error
		if sessionPolicy, err = parsePolicy(json.RawMessage(doc)); err != nil {
			return nil, &apiError{http.StatusBadRequest, "MalformedPolicyDocument", "The policy is not in the valid JSON format."}
		}
	}
	sourceIdentity := ctx["sts:sourceidentity"]
	c, err := s.mint(r.Context(), role, session, duration, narrow(rolePerms, sessionPolicy), true, sourceIdentity)
	if err != nil {
		s.opts.Logf("sts: %v", err)
		return nil, &apiError{http.StatusInternalServerError, "InternalFailure", "The request processing has failed because of an unknown error."}
	}
	var out assumeRoleResponse
	out.NS = stsNS
	out.Result.Credentials = xmlCredentials{c.accessKey, c.secret, c.token, c.expires.Format(time.RFC3339)}
	out.Result.AssumedRoleUser.Arn = c.arn()
	out.Result.AssumedRoleUser.AssumedRoleID = roleID(role) + ":" + session
	out.Result.SourceIdentity = sourceIdentity
	if form.Get("Policy") != "" {
		out.Result.PackedPolicySize = min(100, len(form.Get("Policy"))/20)
	}
	out.RequestID = randomID("", 8)
	return out, nil
}

type getRoleResponse struct {
	XMLName xml.Name `xml:"GetRoleResponse"`
	NS      string   `xml:"xmlns,attr"`
	Role    struct {
		Path                     string
		RoleName                 string
		RoleID                   string `xml:"RoleId"`
		Arn                      string
		CreateDate               string
		AssumeRolePolicyDocument string
		MaxSessionDuration       int
	} `xml:"GetRoleResult>Role"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

// getRole is IAM GetRole: only for roles of the caller's own account, and only if the caller's
// policy allows iam:GetRole on the role.
func (s *Server) getRole(caller *issued, name string) (any, *apiError) {
	s.mu.Lock()
	var role *Role
	for i := range s.opts.Config.Roles {
		r := &s.opts.Config.Roles[i]
		if r.name() == name && r.account() == caller.role.account() {
			role = r
		}
	}
	callerPerms, _ := parsePolicy(caller.role.PermissionPolicy)
	s.mu.Unlock()
	resource := fmt.Sprintf("arn:aws:iam::%s:role/%s", caller.role.account(), name)
	if !identityAllows(callerPerms, "iam:GetRole", resource, nil) {
		return nil, denied(caller, "iam:GetRole", resource)
	}
	if role == nil {
		return nil, &apiError{http.StatusNotFound, "NoSuchEntity", fmt.Sprintf("The role with name %s cannot be found.", name)}
	}
	var out getRoleResponse
	out.NS = iamNS
	out.Role.Path = "/"
	out.Role.RoleName = role.name()
	out.Role.RoleID = roleID(role)
	out.Role.Arn = role.ARN
	out.Role.CreateDate = "2026-01-01T00:00:00Z"
	out.Role.AssumeRolePolicyDocument = url.QueryEscape(string(role.TrustPolicy))
	out.Role.MaxSessionDuration = role.MaxSessionDuration
	out.RequestID = randomID("", 8)
	return out, nil
}

type webIdentityResponse struct {
	XMLName xml.Name `xml:"AssumeRoleWithWebIdentityResponse"`
	NS      string   `xml:"xmlns,attr"`
	Result  struct {
		Credentials                 xmlCredentials
		SubjectFromWebIdentityToken string
		AssumedRoleUser             struct {
			Arn           string
			AssumedRoleID string `xml:"AssumedRoleId"`
		}
		Provider string
		Audience string
	} `xml:"AssumeRoleWithWebIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

// assumeRoleWithWebIdentity checks the token against the configured OIDC tokens and the role's
// trust policy (Principal {"Federated": provider}, conditions on <host>:sub and <host>:aud).
func (s *Server) assumeRoleWithWebIdentity(r *http.Request, form url.Values) (any, *apiError) {
	var tok *OIDCToken
	for i := range s.opts.Config.OIDC {
		if s.opts.Config.OIDC[i].Token == form.Get("WebIdentityToken") {
			tok = &s.opts.Config.OIDC[i]
		}
	}
	if tok == nil {
		return nil, &apiError{http.StatusBadRequest, "InvalidIdentityToken", "The ID Token provided is not a valid JWT."}
	}
	session := form.Get("RoleSessionName")
	if !sessionNameRe.MatchString(session) {
		return nil, validation("1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint")
	}
	s.mu.Lock()
	role, ok := s.opts.Config.role(form.Get("RoleArn"))
	var trust, perms policy
	if ok {
		trust, _ = parsePolicy(role.TrustPolicy)
		perms, _ = parsePolicy(role.PermissionPolicy)
	}
	s.mu.Unlock()
	host := tok.Provider[strings.Index(tok.Provider, "oidc-provider/")+len("oidc-provider/"):]
	ctx := map[string]string{host + ":sub": tok.Subject, host + ":aud": tok.Audience}
	if allowed, _ := trustFor(trust, "sts:AssumeRoleWithWebIdentity", tok.Provider, "", ctx); !ok || !allowed {
		return nil, &apiError{http.StatusForbidden, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"}
	}
	c, err := s.mint(r.Context(), role, session, time.Hour, s3Only(perms), false, "")
	if err != nil {
		return nil, &apiError{http.StatusInternalServerError, "InternalFailure", "The request processing has failed because of an unknown error."}
	}
	var out webIdentityResponse
	out.NS = stsNS
	out.Result.Credentials = xmlCredentials{c.accessKey, c.secret, c.token, c.expires.Format(time.RFC3339)}
	out.Result.SubjectFromWebIdentityToken = tok.Subject
	out.Result.AssumedRoleUser.Arn = c.arn()
	out.Result.AssumedRoleUser.AssumedRoleID = roleID(role) + ":" + session
	out.Result.Provider = tok.Provider
	out.Result.Audience = tok.Audience
	out.RequestID = randomID("", 8)
	return out, nil
}
