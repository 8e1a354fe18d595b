//go:build !linux

package fsarchive

import "os"

// syncData makes a new object's bytes durable (fsync: fdatasync is Linux's).
func syncData(f *os.File) error { return f.Sync() }
