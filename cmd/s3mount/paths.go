package main

import (
	"errors"
	"path/filepath"

	"github.com/s3mount/s3mount/internal/safepath"
)

// checkLocalPaths refuses, before anything is mounted, a staging directory, disk cache directory
// or log file that another local user could redirect (see internal/safepath: every directory on
// the way owned by the mounting user or root and not writable by others, no symbolic link at the
// end). The staging and cache directories are created (mode 0700) if missing.
func checkLocalPaths(c *config) error {
	dirs := []struct{ what, path string }{{"staging directory (staging_dir)", c.fs.StagingDir}}
	if c.fs.DiskCacheSize > 0 {
		cache := c.fs.DiskCacheDir
		if cache == "" {
			cache = filepath.Join(c.fs.StagingDir, "cache")
		}
		dirs = append(dirs, struct{ what, path string }{"disk cache directory (cache_dir)", cache})
	}
	for _, d := range dirs {
		dir, err := safepath.MkdirAll(d.path)
		if err != nil {
			return unsafePath(d.what, err)
		}
		dir.Close()
	}
	if c.logFile != "" {
		if err := safepath.CheckFile(c.logFile); err != nil {
			return unsafePath("log file (log_file)", err)
		}
	}
	return nil
}

// unsafePath is the error of a refused local path: exit code exitUnsafePath for a refusal,
// exitError for any other failure (a missing parent of a log file, a read-only disk).
func unsafePath(what string, err error) error {
	var se *safepath.Error
	if errors.As(err, &se) {
		return fail(exitUnsafePath, "refusing the %s: %v", what, err)
	}
	return fail(exitError, "%s: %v", what, err)
}
