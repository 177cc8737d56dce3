package fs

import "strings"

// maxNameLen is Linux's NAME_MAX. Keys whose last segment is longer are not shown.
const maxNameLen = 255

// validName reports whether name can be a directory entry: not empty, not "." or "..", no "/" or
// NUL, at most 255 bytes. Keys that would map to other names (for example "a//b" or "../x") are
// hidden rather than shown under a name that points elsewhere.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= maxNameLen &&
		!strings.ContainsAny(name, "/\x00")
}

// maxKeyLen is S3's limit on the length of a key, in bytes of its UTF-8 form, prefix included.
const maxKeyLen = 1024

// keyFits reports whether S3 can hold an object named key. Operations that would make a longer key
// fail with ENAMETOOLONG before anything is written, rather than at the commit.
func keyFits(key string) bool { return len(key) <= maxKeyLen }

// childKey returns the object key of name inside the directory whose key prefix is dirKey ("" or
// ending in "/").
func childKey(dirKey, name string) string { return dirKey + name }

// dirPrefix returns the key prefix of the directory whose key is key (without trailing slash).
func dirPrefix(key string) string { return key + "/" }
