package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/espnode/espnode/dcm"
)

// Level is a Query/Retrieve information model level (PS3.4 C.3).
type Level int

const (
	PatientLevel Level = iota
	StudyLevel
	SeriesLevel
	ImageLevel
)

// ParseLevel reads a Query/Retrieve Level value.
func ParseLevel(s string) (Level, error) {
	switch strings.TrimSpace(s) {
	case "PATIENT":
		return PatientLevel, nil
	case "STUDY":
		return StudyLevel, nil
	case "SERIES":
		return SeriesLevel, nil
	case "IMAGE":
		return ImageLevel, nil
	}
	return 0, fmt.Errorf("query/retrieve level %q: want PATIENT, STUDY, SERIES or IMAGE", s)
}

func (l Level) String() string {
	return [...]string{"PATIENT", "STUDY", "SERIES", "IMAGE"}[l]
}

// Match is one matching key of a query (PS3.4 C.2.2.2): exactly one of Values (single value or
// list of UIDs: any of them), Pattern (wildcards * and ?) or a range Lo-Hi (either end open).
type Match struct {
	Tag     dcm.Tag
	Values  []string
	Pattern string
	Range   bool
	Lo, Hi  string
}

// Query selects records at Level; every Match must hold.
type Query struct {
	Level   Level
	Matches []Match
}

// Record is one query result: the Instance fields of Level and the levels above it are filled,
// with the counts and lists derived for that level.
type Record struct {
	Instance
	ModalitiesInStudy []string
	SOPClassesInStudy []string
	// Related counts: studies, series and instances under the record's entity.
	RelatedStudies, RelatedSeries, RelatedInstances int
}

// Find calls fn for each record matching q, in a stable order, as rows are read: a long result is
// never held whole. fn returning an error stops the query with that error.
func (s *Store) Find(ctx context.Context, q Query, fn func(Record) error) error {
	return s.idx.find(ctx, q, fn)
}

// Instances returns every instance under the given study, series or instance UIDs (a C-MOVE or
// C-GET selection); empty lists do not restrict.
func (s *Store) Instances(ctx context.Context, studies, series, instances []string) ([]Instance, error) {
	q := Query{Level: ImageLevel}
	if len(studies) > 0 {
		q.Matches = append(q.Matches, Match{Tag: dcm.StudyInstanceUID, Values: studies})
	}
	if len(series) > 0 {
		q.Matches = append(q.Matches, Match{Tag: dcm.SeriesInstanceUID, Values: series})
	}
	if len(instances) > 0 {
		q.Matches = append(q.Matches, Match{Tag: dcm.SOPInstanceUID, Values: instances})
	}
	var out []Instance
	err := s.Find(ctx, q, func(r Record) error {
		out = append(out, r.Instance)
		return nil
	})
	return out, err
}
