package awsemu

import (
	"encoding/json"
	"errors"
	"strings"
)

// policy is an IAM policy document.
type policy struct {
	Version   string      `json:"Version,omitempty"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid       string                        `json:"Sid,omitempty"`
	Effect    string                        `json:"Effect"`
	Principal json.RawMessage               `json:"Principal,omitempty"`
	Action    strList                       `json:"Action,omitempty"`
	Resource  strList                       `json:"Resource,omitempty"`
	Condition map[string]map[string]strList `json:"Condition,omitempty"`
}

// strList is an IAM value that is a string or a list of strings.
type strList []string

func (l *strList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*l = strList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*l = many
	return nil
}

func parsePolicy(doc json.RawMessage) (policy, error) {
	var p policy
	if len(doc) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(doc, &p); err != nil {
		return p, err
	}
	for _, s := range p.Statement {
		if s.Effect != "Allow" && s.Effect != "Deny" {
			return p, errors.New(`every statement needs "Effect": "Allow" or "Deny"`)
		}
	}
	return p, nil
}

// wildcard matches * as any run of characters and ? as one.
func wildcard(p, s string) bool {
	if p == "" {
		return s == ""
	}
	switch p[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if wildcard(p[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && wildcard(p[1:], s[1:])
	}
	return s != "" && p[0] == s[0] && wildcard(p[1:], s[1:])
}

func matchesAny(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			p, s = strings.ToLower(p), strings.ToLower(s)
		}
		if wildcard(p, s) {
			return true
		}
	}
	return false
}

// conditionsHold evaluates StringEquals / StringLike (and their IfExists-free negations) against
// the request context. A key missing from the context fails a positive condition, as in AWS.
func conditionsHold(cond map[string]map[string]strList, ctx map[string]string) bool {
	for op, kv := range cond {
		for key, values := range kv {
			v, present := ctx[strings.ToLower(key)]
			var hit bool
			switch op {
			case "StringEquals", "StringNotEquals":
				for _, want := range values {
					hit = hit || (present && v == want)
				}
			case "StringLike", "StringNotLike":
				for _, want := range values {
					hit = hit || (present && wildcard(want, v))
				}
			default:
				return false // an operator we do not model never grants
			}
			if strings.Contains(op, "Not") {
				hit = present && !hit
			}
			if !hit {
				return false
			}
		}
	}
	return true
}

// principalMatches reports whether a statement's Principal names the caller: its role, its account
// (bare ID or :root ARN) or everyone.
func principalMatches(raw json.RawMessage, callerRole, callerAccount string) bool {
	var star string
	if json.Unmarshal(raw, &star) == nil {
		return star == "*"
	}
	var m map[string]strList
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	for _, p := range m["Federated"] {
		if p == callerRole { // a web identity caller is its OIDC provider
			return true
		}
	}
	for _, p := range m["AWS"] {
		switch {
		case p == "*", strings.EqualFold(p, callerRole), p == callerAccount, p == "arn:aws:iam::"+callerAccount+":root":
			return true
		}
	}
	return false
}

// trustDecision evaluates a role's trust policy for an sts:AssumeRole by a caller.
// namedRole reports whether the Allow named the caller's role explicitly (then, within one
// account, the caller needs no identity-policy permission of its own).
func trustDecision(p policy, callerRole, callerAccount string, ctx map[string]string) (allowed, namedRole bool) {
	return trustFor(p, "sts:AssumeRole", callerRole, callerAccount, ctx)
}

// trustFor evaluates a trust policy for action (sts:AssumeRole or sts:AssumeRoleWithWebIdentity).
func trustFor(p policy, action, callerRole, callerAccount string, ctx map[string]string) (allowed, namedRole bool) {
	for _, s := range p.Statement {
		if !matchesAny(s.Action, action, true) || !principalMatches(s.Principal, callerRole, callerAccount) || !conditionsHold(s.Condition, ctx) {
			continue
		}
		if s.Effect == "Deny" {
			return false, false
		}
		allowed = true
		namedRole = namedRole || principalMatches(s.Principal, callerRole, "no-account") && !principalMatches(s.Principal, "", callerAccount)
	}
	return allowed, namedRole
}

// identityAllows evaluates an identity (permission) policy for action on resource: an explicit
// Deny wins, otherwise some Allow must match.
func identityAllows(p policy, action, resource string, ctx map[string]string) bool {
	allowed := false
	for _, s := range p.Statement {
		if !matchesAny(s.Action, action, true) || !matchesAny(s.Resource, resource, false) || !conditionsHold(s.Condition, ctx) {
			continue
		}
		if s.Effect == "Deny" {
			return false
		}
		allowed = true
	}
	return allowed
}

// s3Only keeps the statements about S3 (MinIO rejects policies with other services' actions).
func s3Only(p policy) policy {
	out := policy{Version: "2012-10-17"}
	for _, s := range p.Statement {
		var actions strList
		for _, a := range s.Action {
			if strings.HasPrefix(strings.ToLower(a), "s3:") || a == "*" {
				actions = append(actions, a)
			}
		}
		if len(actions) == 0 {
			continue
		}
		s.Action = actions
		s.Principal = nil
		out.Statement = append(out.Statement, s)
	}
	return out
}

// narrow returns the permissions of a session: the role's S3 statements, intersected with the
// session policy of the AssumeRole request if there is one. The intersection keeps each session
// statement that some role statement covers (its actions and resources match the role's patterns),
// with the role statement's conditions added. This is exact for the usual scope-down policies (the
// same actions on a narrower prefix) and never grants more than both policies do.
func narrow(role, session policy) policy {
	role = s3Only(role)
	if len(session.Statement) == 0 {
		return role
	}
	out := policy{Version: "2012-10-17"}
	for _, s := range s3Only(session).Statement {
		if s.Effect != "Allow" {
			out.Statement = append(out.Statement, s)
			continue
		}
		for _, r := range role.Statement {
			if r.Effect != "Allow" || !coversAll(r.Action, s.Action, true) || !coversAll(r.Resource, s.Resource, false) {
				continue
			}
			merged := s
			merged.Condition = map[string]map[string]strList{}
			for op, kv := range r.Condition {
				merged.Condition[op] = map[string]strList{}
				for k, v := range kv {
					merged.Condition[op][k] = v
				}
			}
			for op, kv := range s.Condition {
				if merged.Condition[op] == nil {
					merged.Condition[op] = map[string]strList{}
				}
				for k, v := range kv {
					merged.Condition[op][k] = v
				}
			}
			if len(merged.Condition) == 0 {
				merged.Condition = nil
			}
			out.Statement = append(out.Statement, merged)
			break
		}
		for _, r := range role.Statement {
			if r.Effect == "Deny" {
				out.Statement = append(out.Statement, r)
			}
		}
	}
	return out
}

func coversAll(patterns, values []string, fold bool) bool {
	for _, v := range values {
		if !matchesAny(patterns, v, fold) {
			return false
		}
	}
	return true
}
