package store

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestResourceErrorsKeepTheCause(t *testing.T) {
	tee := &teeReader{ctx: context.Background(), r: strings.NewReader("abcdef"), w: enospcWriter{}}
	if _, err := tee.Read(make([]byte, 4)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("tee: %v", err)
	}
	if tee.werr == nil || tee.rerr != nil {
		t.Fatalf("write error not told apart: werr %v, rerr %v", tee.werr, tee.rerr)
	}
	err := resourceErr("1.2.3", tee.werr)
	if !errors.Is(err, ErrOutOfResources) || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("%v: want ErrOutOfResources and ENOSPC", err)
	}
}

type enospcWriter struct{}

func (enospcWriter) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}
}
