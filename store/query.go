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

// KeyKind is how the values of a matching key compare.
type KeyKind int

const (
	// KeyText compares exactly (wildcards and ranges as PS3.4 C.2.2.2 says).
	KeyText KeyKind = iota
	// KeyPersonName compares ignoring case, as person names are matched.
	KeyPersonName
	// KeyNumber compares integers (IS values).
	KeyNumber
)

// Key is a matching key the index supports: the level it belongs to and how
// it compares.
type Key struct {
	Level Level
	Kind  KeyKind
}

// Keys returns the matching keys the index supports, each with its level.
// Every Index engine matches all of them; ModalitiesInStudy, derived from
// the series, is matched at study level besides.
func Keys() map[dcm.Tag]Key {
	return map[dcm.Tag]Key{
		dcm.PatientID:              {PatientLevel, KeyText},
		dcm.IssuerOfPatientID:      {PatientLevel, KeyText},
		dcm.PatientName:            {PatientLevel, KeyPersonName},
		dcm.PatientBirthDate:       {PatientLevel, KeyText},
		dcm.PatientSex:             {PatientLevel, KeyText},
		dcm.StudyInstanceUID:       {StudyLevel, KeyText},
		dcm.StudyDate:              {StudyLevel, KeyText},
		dcm.StudyTime:              {StudyLevel, KeyText},
		dcm.AccessionNumber:        {StudyLevel, KeyText},
		dcm.StudyID:                {StudyLevel, KeyText},
		dcm.StudyDescription:       {StudyLevel, KeyText},
		dcm.ReferringPhysicianName: {StudyLevel, KeyPersonName},
		dcm.SeriesInstanceUID:      {SeriesLevel, KeyText},
		dcm.Modality:               {SeriesLevel, KeyText},
		dcm.SeriesNumber:           {SeriesLevel, KeyNumber},
		dcm.SeriesDescription:      {SeriesLevel, KeyText},
		dcm.SeriesDate:             {SeriesLevel, KeyText},
		dcm.SeriesTime:             {SeriesLevel, KeyText},
		dcm.BodyPartExamined:       {SeriesLevel, KeyText},
		dcm.SOPInstanceUID:         {ImageLevel, KeyText},
		dcm.SOPClassUID:            {ImageLevel, KeyText},
		dcm.InstanceNumber:         {ImageLevel, KeyNumber},
	}
}

// Matchable reports whether the index can match on a tag at a level (the tag belongs to that
// level or one above it). ModalitiesInStudy matches at study level.
func Matchable(t dcm.Tag, l Level) bool {
	if t == dcm.ModalitiesInStudy {
		return l == StudyLevel
	}
	k, ok := Keys()[t]
	return ok && k.Level <= l
}

// Find calls fn for each record matching q, in a stable order, as rows are read: a long result is
// never held whole. fn returning an error stops the query with that error.
func (s *Store) Find(ctx context.Context, q Query, fn func(Record) error) error {
	return s.index.Find(ctx, q, fn)
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
