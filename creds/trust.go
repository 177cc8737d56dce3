package creds

import (
	"encoding/json"
	"strings"
)

// policyDoc is the part of an IAM policy document that trust diagnosis reads.
type policyDoc struct {
	Statement []struct {
		Effect    string
		Principal json.RawMessage
		Action    json.RawMessage
		Condition map[string]map[string]json.RawMessage
	}
}

// stringOrList decodes an IAM value that is either a string or a list of strings.
func stringOrList(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var list []string
	_ = json.Unmarshal(raw, &list)
	return list
}

// evalTrust reports whether an Allow statement for sts:AssumeRole in the trust policy doc names
// the caller (its role, its account, or "*"), and the External IDs that such statements require
// (none if any matching statement has no sts:ExternalId condition). It is a diagnostic aid, not a
// policy engine: the answer is used to explain a denial that STS already gave.
func evalTrust(doc, callerARN string) (trusted bool, externalIDs []string) {
	var p policyDoc
	if json.Unmarshal([]byte(doc), &p) != nil {
		return true, nil // cannot tell; do not claim a cause
	}
	role := principalToTrust(callerARN)
	account := strings.SplitN(callerARN+":::::", ":", 6)[4]
	for _, st := range p.Statement {
		if st.Effect != "Allow" || !actionAllowsAssume(st.Action) || !principalNames(st.Principal, role, account) {
			continue
		}
		ids := conditionValues(st.Condition, "sts:externalid")
		if len(ids) == 0 {
			return true, nil
		}
		trusted = true
		externalIDs = append(externalIDs, ids...)
	}
	return trusted, externalIDs
}

func actionAllowsAssume(raw json.RawMessage) bool {
	for _, a := range stringOrList(raw) {
		if a == "*" || strings.EqualFold(a, "sts:*") || strings.EqualFold(a, "sts:AssumeRole") {
			return true
		}
	}
	return false
}

func principalNames(raw json.RawMessage, role, account string) bool {
	var any string
	if json.Unmarshal(raw, &any) == nil {
		return any == "*"
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	for _, p := range stringOrList(m["AWS"]) {
		if p == "*" || p == role || p == account || p == "arn:aws:iam::"+account+":root" {
			return true
		}
	}
	return false
}

// conditionValues collects the values of key (case-insensitive) under StringEquals/StringLike.
func conditionValues(cond map[string]map[string]json.RawMessage, key string) []string {
	var out []string
	for op, kv := range cond {
		if op != "StringEquals" && op != "StringLike" {
			continue
		}
		for k, v := range kv {
			if strings.EqualFold(k, key) {
				out = append(out, stringOrList(v)...)
			}
		}
	}
	return out
}
