package dcm

import (
	"fmt"
	"sort"
	"strings"
)

//go:generate go run ./internal/dictgen -in dictionary.txt -out dictionary.go

// Tag is a data element tag: group in the high 16 bits, element in the low.
type Tag uint32

// NewTag returns the tag (group,element).
func NewTag(group, element uint16) Tag { return Tag(uint32(group)<<16 | uint32(element)) }

// Group returns the tag's group number.
func (t Tag) Group() uint16 { return uint16(t >> 16) }

// Element returns the tag's element number.
func (t Tag) Element() uint16 { return uint16(t) }

// String formats the tag as DCMTK and the standard do: (0008,0018).
func (t Tag) String() string { return fmt.Sprintf("(%04X,%04X)", t.Group(), t.Element()) }

// IsPrivate reports whether the tag is in an odd (private) group.
func (t Tag) IsPrivate() bool { return t.Group()%2 == 1 }

// Name returns the PS3.6 keyword of a tag this package knows, or "" for any other.
func (t Tag) Name() string {
	if e, ok := lookup(t); ok {
		return e.keyword
	}
	return ""
}

// describe names a tag for error messages: keyword and number when known, the number alone else.
func (t Tag) describe() string {
	if n := t.Name(); n != "" {
		return n + " " + t.String()
	}
	return t.String()
}

type dictEntry struct {
	tag     Tag
	vr      string
	keyword string
}

func lookup(t Tag) (dictEntry, bool) {
	i := sort.Search(len(dictionary), func(i int) bool { return dictionary[i].tag >= t })
	if i < len(dictionary) && dictionary[i].tag == t {
		return dictionary[i], true
	}
	return dictEntry{}, false
}

// VROf is the VR of a tag this package knows, which implicit VR data sets need; group lengths
// (element 0000) are UL, and anything else is "UN".
func VROf(t Tag) string {
	if e, ok := lookup(t); ok && e.vr != "" {
		return e.vr
	}
	if t.Element() == 0 {
		return "UL"
	}
	return "UN"
}

// TagByName returns the tag with a PS3.6 keyword this package knows, the case of the letters
// aside.
func TagByName(keyword string) (Tag, bool) {
	for _, e := range dictionary {
		if strings.EqualFold(e.keyword, keyword) {
			return e.tag, true
		}
	}
	return 0, false
}

// TagSet is a set of tags.
type TagSet map[Tag]struct{}

// NewTagSet returns a set holding tags.
func NewTagSet(tags ...Tag) TagSet {
	s := make(TagSet, len(tags))
	for _, t := range tags {
		s[t] = struct{}{}
	}
	return s
}

// Has reports whether t is in the set.
func (s TagSet) Has(t Tag) bool {
	_, ok := s[t]
	return ok
}
