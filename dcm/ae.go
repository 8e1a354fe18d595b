package dcm

import (
	"errors"
	"fmt"
	"strings"
)

// MaxAELength is the longest Application Entity title (PS3.5 §6.2, AE).
const MaxAELength = 16

// ErrBadAE is wrapped by every error CheckAE returns.
var ErrBadAE = errors.New("not a valid AE title")

// CheckAE reports whether s is a valid AE value: at most 16 characters of the
// default repertoire (printable ASCII), no backslash (the value separator), no
// control characters, and not only spaces (PS3.5 §6.2). Leading and trailing
// spaces are allowed because the standard makes them insignificant; compare
// titles with strings.TrimSpace.
func CheckAE(s string) error {
	if len(s) > MaxAELength {
		return fmt.Errorf("%w: %q has %d characters, at most %d allowed", ErrBadAE, s, len(s), MaxAELength)
	}
	if strings.TrimLeft(s, " ") == "" {
		return fmt.Errorf("%w: %q is empty or only spaces", ErrBadAE, s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '\\' {
			return fmt.Errorf("%w: %q has %q at offset %d", ErrBadAE, s, c, i)
		}
	}
	return nil
}
