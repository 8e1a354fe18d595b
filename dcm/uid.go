package dcm

import (
	"errors"
	"fmt"
)

// MaxUIDLength is the longest UID PS3.5 §9.1 allows.
const MaxUIDLength = 64

// ErrBadUID is wrapped by every error CheckUID returns.
var ErrBadUID = errors.New("not a valid UID")

// CheckUID reports whether s is a UID as PS3.5 §9.1 defines it: components of
// digits separated by single dots, no component with a leading zero unless it
// is "0" itself, at most 64 characters. Callers must pass the value with its
// padding already trimmed. UIDs name files in the archive, so this check is
// what stands between a peer and the file system: it is strict on purpose.
func CheckUID(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrBadUID)
	}
	if len(s) > MaxUIDLength {
		return fmt.Errorf("%w: %d characters, at most %d allowed", ErrBadUID, len(s), MaxUIDLength)
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			if s[i] < '0' || s[i] > '9' {
				return fmt.Errorf("%w: %q: character %q at offset %d", ErrBadUID, s, s[i], i)
			}
			continue
		}
		switch {
		case i == start:
			return fmt.Errorf("%w: %q: empty component at offset %d", ErrBadUID, s, i)
		case s[start] == '0' && i-start > 1:
			return fmt.Errorf("%w: %q: component %q has a leading zero", ErrBadUID, s, s[start:i])
		}
		start = i + 1
	}
	return nil
}
