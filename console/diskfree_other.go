//go:build !unix

package console

import "errors"

func diskFree(string) (free, total uint64, err error) {
	return 0, 0, errors.New("disk space is not measured on this system")
}
