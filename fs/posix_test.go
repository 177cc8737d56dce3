package fs

import (
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"

	"github.com/s3mount/s3mount/fs/backend/memback"
)

// posixNotApplicable lists the go-fuse posixtest checks that do not apply, and why.
var posixNotApplicable = map[string]string{
	"Link":                "S3 has no hard links: link(2) fails with EPERM by design",
	"LinkUnlinkRename":    "needs hard links",
	"NlinkZero":           "needs hard links",
	"FcntlFlockLocksFile": "locks are not offered: S3 has no locking to back them",
	"FcntlFlockSetLk":     "locks are not offered",
	"XAttr":               "extended attributes are not stored",
	"XAttrLarge":          "extended attributes are not stored",
	"DirectIO":            "O_DIRECT is not supported",
	"LseekHoleSeeksToEOF": "SEEK_HOLE is not implemented",
	"LseekEnxioCheck":     "SEEK_DATA is not implemented",
	"SetattrSymlink":      "symlink attributes cannot be changed (S3 objects are rewritten whole)",
	"OpenSymlinkRace":     "needs symlink attribute changes",
}

func TestPosix(t *testing.T) {
	for name, fn := range posixtest.All {
		t.Run(name, func(t *testing.T) {
			if why, skip := posixNotApplicable[name]; skip {
				t.Skip(why)
			}
			opts := writeOptions()
			opts.PartSize = 8 << 20
			fn(t, testMount(t, memback.New(), opts))
		})
	}
}
