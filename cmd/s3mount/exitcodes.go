package main

// Exit codes of s3mount; documented in docs/CLI.md. They are stable: scripts may test them.
const (
	exitOK          = 0
	exitError       = 1  // an error not covered below
	exitUsage       = 2  // bad command line or options
	exitMountpoint  = 10 // the mountpoint is missing, not a directory, not empty, or already mounted
	exitCredentials = 11 // the credential chain failed (source or an AssumeRole hop)
	exitS3          = 12 // the bucket or prefix cannot be reached with the credentials
	exitMount       = 13 // the kernel mount failed
	exitUncommitted = 14 // unmounted, but some files being written did not reach S3 (they are named)
	exitUnsafePath  = 15 // a local directory or file s3mount writes could be redirected by another user
)
