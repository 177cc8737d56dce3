package creds

// Secret holds a value that must never be printed: an External ID or a key. Printing it with any
// verb of the fmt package, or logging it, shows "**redacted**".
type Secret string

const redacted = "**redacted**"

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return redacted }

// MarshalText keeps secrets out of JSON and structured logs.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Reveal returns the value, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }
