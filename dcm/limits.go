package dcm

import "errors"

// Limits bounds what reading a data set may cost, whoever sent it: every length a stream
// declares is checked against these before anything is allocated for it. A zero field takes
// its default; DefaultLimits returns them all.
type Limits struct {
	// MaxDepth bounds the nesting of sequences (a sequence in an item of a sequence is depth
	// 2). Default 64: real objects nest a handful deep.
	MaxDepth int
	// MaxValueLength is the longest value read into memory. Default 1 GiB. Longer values can
	// still be skipped (ParseOptions.SkipValuesOver) or streamed (Reader.ValueReader).
	MaxValueLength int64
	// MaxInflated bounds what a deflated data set inflates to, against compression bombs.
	// Default 1 GiB.
	MaxInflated int64
	// MaxFragments bounds the items of one encapsulated pixel data element. Default 2^20.
	MaxFragments int
	// MaxElements bounds the elements, items and fragments of one data set, nested ones
	// included, read or skipped: a bound on the work a stream of tiny headers (a deflate bomb
	// of empty items, say) can cause. Default 2^22; an enhanced multi-frame object of 10,000
	// frames has a few hundred thousand.
	MaxElements int
	// MaxFileMeta bounds the File Meta Information group (real ones are a few hundred bytes).
	// Default 1 MiB.
	MaxFileMeta int64
	// MaxBufferedSequence bounds a defined-length sequence that ExplicitToImplicit rewrites in
	// memory, since its length changes with the encoding. Default 16 MiB.
	MaxBufferedSequence int64
}

// DefaultLimits returns the limits used where none are given.
func DefaultLimits() Limits {
	return Limits{
		MaxDepth:            64,
		MaxValueLength:      1 << 30,
		MaxInflated:         1 << 30,
		MaxFragments:        1 << 20,
		MaxElements:         1 << 22,
		MaxFileMeta:         1 << 20,
		MaxBufferedSequence: 16 << 20,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxValueLength <= 0 {
		l.MaxValueLength = d.MaxValueLength
	}
	if l.MaxInflated <= 0 {
		l.MaxInflated = d.MaxInflated
	}
	if l.MaxFragments <= 0 {
		l.MaxFragments = d.MaxFragments
	}
	if l.MaxElements <= 0 {
		l.MaxElements = d.MaxElements
	}
	if l.MaxFileMeta <= 0 {
		l.MaxFileMeta = d.MaxFileMeta
	}
	if l.MaxBufferedSequence <= 0 {
		l.MaxBufferedSequence = d.MaxBufferedSequence
	}
	return l
}

// ErrLimit is wrapped, together with ErrMalformed, by errors for data that exceeds a Limit.
var ErrLimit = errors.New("exceeds a limit")

// ErrMalformed is wrapped by errors that report data which does not follow the encoding rules,
// truncation included. Errors from the underlying reader are passed through unwrapped, so a
// caller can tell a broken object from a broken connection.
var ErrMalformed = errors.New("malformed DICOM data")
