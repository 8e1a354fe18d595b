package dicomweb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
)

// The attributes each level answers with unless includefield asks for more (PS3.18 Tables
// 6.7.1-2, -2a and -2b), as far as the index holds them; Study Description, Series Date and Time
// are added because every study list shows them. A query without its parent's UID in the path
// answers with the parent levels' attributes too.
var (
	studyReturn = []dcm.Tag{dcm.SpecificCharacterSet, dcm.StudyDate, dcm.StudyTime, dcm.AccessionNumber,
		dcm.InstanceAvailability, dcm.ModalitiesInStudy, dcm.ReferringPhysicianName, dcm.StudyDescription,
		dcm.RetrieveURL, dcm.PatientName, dcm.PatientID, dcm.PatientBirthDate, dcm.PatientSex,
		dcm.StudyInstanceUID, dcm.StudyID, dcm.NumberOfStudyRelatedSeries, dcm.NumberOfStudyRelatedInstances}
	seriesReturn = []dcm.Tag{dcm.SpecificCharacterSet, dcm.SeriesDate, dcm.SeriesTime, dcm.Modality,
		dcm.SeriesDescription, dcm.RetrieveURL, dcm.StudyInstanceUID, dcm.SeriesInstanceUID, dcm.SeriesNumber,
		dcm.NumberOfSeriesRelatedInstances}
	instanceReturn = []dcm.Tag{dcm.SpecificCharacterSet, dcm.SOPClassUID, dcm.SOPInstanceUID,
		dcm.InstanceAvailability, dcm.RetrieveURL, dcm.StudyInstanceUID, dcm.SeriesInstanceUID,
		dcm.InstanceNumber, dcm.Rows, dcm.Columns, dcm.NumberOfFrames}
)

// qidoQuery is a parsed QIDO-RS request.
type qidoQuery struct {
	level   store.Level
	query   store.Query
	returns []dcm.Tag // sorted, without duplicates
	// all: includefield=all (every attribute of the level; at instance level, of the data set).
	all           bool
	limit, offset int
	fuzzy         bool
	// unsupported are the query keys that were ignored, for the Warning header.
	unsupported []string
}

// Bounds on a QIDO-RS query string.
const (
	maxQueryLength = 16 << 10
	maxQueryKeys   = 128
)

// parseQIDO reads a QIDO-RS query (PS3.18 §8.3.4) at level, under the study and series the path
// names. Matching is the index's (store.MatchElement, as C-FIND's): wildcards, ranges of dates
// and times, lists of UIDs (separated by commas or backslashes).
func parseQIDO(rawQuery string, level store.Level, study, series string, maxResults int) (qidoQuery, error) {
	q := qidoQuery{level: level, query: store.Query{Level: level}, limit: maxResults}
	if len(rawQuery) > maxQueryLength {
		return q, fmt.Errorf("query string longer than %d bytes", maxQueryLength)
	}
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return q, fmt.Errorf("query string: %w", err)
	}
	if len(values) > maxQueryKeys {
		return q, fmt.Errorf("more than %d query keys", maxQueryKeys)
	}
	returns := map[dcm.Tag]bool{}
	add := func(tags ...dcm.Tag) {
		for _, t := range tags {
			returns[t] = true
		}
	}
	switch level {
	case store.StudyLevel:
		add(studyReturn...)
	case store.SeriesLevel:
		add(seriesReturn...)
		if study == "" {
			add(studyReturn...)
		}
	case store.ImageLevel:
		add(instanceReturn...)
		if series == "" {
			add(seriesReturn...)
		}
		if study == "" {
			add(studyReturn...)
		}
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		vals := values[key]
		switch key {
		case "limit", "offset":
			n, err := strconv.Atoi(vals[len(vals)-1])
			if err != nil || n < 0 || (key == "limit" && n == 0) {
				return q, fmt.Errorf("%s=%q: want a positive integer", key, vals[len(vals)-1])
			}
			if key == "limit" {
				q.limit = min(n, maxResults)
			} else {
				q.offset = n
			}
			continue
		case "fuzzymatching":
			q.fuzzy = strings.EqualFold(vals[len(vals)-1], "true")
			continue
		case "includefield":
			for _, v := range vals {
				for _, f := range strings.Split(v, ",") {
					f = strings.TrimSpace(f)
					if f == "" {
						continue
					}
					if f == "all" {
						q.all = true
						continue
					}
					t, err := attributeTag(f)
					if err != nil {
						return q, fmt.Errorf("includefield: %w", err)
					}
					add(t)
				}
			}
			continue
		case "accept", "charset":
			continue
		}
		t, err := attributeTag(key)
		if err != nil {
			// A sequence path (00400275.00321060) or a keyword this node does not know: PS3.18
			// has the origin server ignore what it cannot match, and say so.
			q.unsupported = append(q.unsupported, key)
			continue
		}
		if !store.Matchable(t, level) {
			q.unsupported = append(q.unsupported, key)
			continue
		}
		vr := dcm.VROf(t)
		joined := strings.Join(vals, `\`)
		if vr == "UI" || vr == "CS" {
			joined = strings.ReplaceAll(joined, ",", `\`)
		}
		add(t)
		if m, ok := store.MatchElement(dcm.Element{Tag: t, VR: vr, Value: []byte(joined)}); ok {
			q.query.Matches = append(q.query.Matches, m)
		}
	}
	for _, p := range []struct {
		tag dcm.Tag
		uid string
	}{{dcm.StudyInstanceUID, study}, {dcm.SeriesInstanceUID, series}} {
		if p.uid == "" {
			continue
		}
		// A key naming another UID as well matches nothing: the index ANDs the two.
		q.query.Matches = append(q.query.Matches, store.Match{Tag: p.tag, Values: []string{p.uid}})
		add(p.tag)
	}
	for t := range returns {
		q.returns = append(q.returns, t)
	}
	slices.Sort(q.returns)
	return q, nil
}

// attributeTag reads a QIDO-RS attribute ID: a tag as eight hex digits, or a PS3.6 keyword
// this node knows.
func attributeTag(s string) (dcm.Tag, error) {
	if len(s) == 8 {
		if n, err := strconv.ParseUint(s, 16, 32); err == nil {
			return dcm.Tag(n), nil
		}
	}
	if strings.ContainsAny(s, ".") {
		return 0, fmt.Errorf("attribute %q: sequence paths are not supported", s)
	}
	if t, ok := dcm.TagByName(s); ok {
		return t, nil
	}
	return 0, fmt.Errorf("attribute %q: not a tag (ggggeeee) or a keyword this node knows", s)
}

var errEnough = errors.New("enough matches")

func (s *Server) search(level store.Level) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		study, series, _, err := uids(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		ranges, err := accepts(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		ct, ok := jsonType(ranges)
		if !ok {
			s.fail(w, r, statusErr(http.StatusNotAcceptable, "QIDO-RS answers in application/dicom+json only"))
			return
		}
		q, err := parseQIDO(r.URL.RawQuery, level, study, series, s.opts.MaxResults)
		if err != nil {
			s.fail(w, r, statusErr(http.StatusBadRequest, "%v", err))
			return
		}
		ctx := r.Context()
		var recs []store.Record
		skipped, more := 0, false
		err = s.archive.Find(ctx, q.query, func(rec store.Record) error {
			if skipped < q.offset {
				skipped++
				return nil
			}
			if len(recs) == q.limit {
				more = true
				return errEnough
			}
			recs = append(recs, rec)
			return nil
		})
		if err != nil && !errors.Is(err, errEnough) {
			s.fail(w, r, fmt.Errorf("search: %w", err))
			return
		}
		var warnings []string
		if len(q.unsupported) > 0 {
			warnings = append(warnings, "The following query keys are not supported and were ignored: "+strings.Join(q.unsupported, ", "))
		}
		if q.fuzzy {
			warnings = append(warnings, "The fuzzymatching parameter is not supported. Only literal matching has been performed.")
		}
		if more {
			warnings = append(warnings, "There are additional results that can be requested.")
		}
		for _, msg := range warnings {
			w.Header().Add("Warning", "299 espnode: "+strconv.Quote(msg))
		}
		w.Header().Set("Content-Type", ct)
		base := s.baseURL(r)
		var buf bytes.Buffer
		buf.WriteByte('[')
		for i, rec := range recs {
			ds, charset, err := s.recordDataSet(ctx, rec, q, base)
			if err != nil {
				s.opts.Logger.Warn().Err(err).Msg("QIDO-RS: attributes of a match")
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			(&jsonEncoder{buf: &buf}).dataSet(ds, charset)
			if buf.Len() > 256<<10 {
				if _, err := w.Write(buf.Bytes()); err != nil {
					return
				}
				buf.Reset()
			}
		}
		buf.WriteByte(']')
		_, _ = w.Write(buf.Bytes())
	}
}

// jsonType negotiates the JSON model's media type; some clients ask for plain JSON.
func jsonType(ranges []mediaRange) (string, bool) {
	for _, r := range ranges {
		switch {
		case r.matches(typeDICOMJSON):
			return typeDICOMJSON, true
		case r.matches(typeJSON):
			return typeJSON, true
		}
	}
	return "", false
}

// recordDataSet builds the attributes of one match: the index's, then those the index does not
// hold read from the instance (at study and series level, from the first instance found), with
// the Specific Character Set the values are in.
func (s *Server) recordDataSet(ctx context.Context, rec store.Record, q qidoQuery, base string) (*dcm.DataSet, []string, error) {
	ds := &dcm.DataSet{}
	var fromFile []dcm.Tag
	for _, t := range q.returns {
		switch {
		case t == dcm.RetrieveURL:
			u := studyURL(base, rec.StudyInstanceUID)
			switch q.level {
			case store.SeriesLevel:
				u = seriesURL(base, rec.StudyInstanceUID, rec.SeriesInstanceUID)
			case store.ImageLevel:
				u = instanceURL(base, rec.StudyInstanceUID, rec.SeriesInstanceUID, rec.SOPInstanceUID)
			}
			ds.Elements = append(ds.Elements, dcm.NewText(t, "UR", u))
		case store.Indexed(t, q.level):
			ds.Elements = append(ds.Elements, indexedElement(t, rec.Value(t, q.level)))
		case knownBelow(t, q.level):
			// An attribute of a lower level (Modality asked of a study) is not the study's.
		default:
			fromFile = append(fromFile, t)
		}
	}
	charset := strings.Split(rec.SpecificCharacterSet, `\`)
	var err error
	if len(fromFile) > 0 || (q.all && q.level == store.ImageLevel) {
		var extra *dcm.DataSet
		extra, err = s.representative(ctx, rec, q.level, fromFile, q.all && q.level == store.ImageLevel)
		for _, e := range extraElements(extra) {
			if !ds.Has(e.Tag) || e.Tag == dcm.SpecificCharacterSet {
				ds.Set(e)
			}
		}
		if extra != nil {
			charset = extra.Strings(dcm.SpecificCharacterSet)
		}
	} else if q.level != store.ImageLevel && needsCharset(ds) {
		charset, err = s.charsetOf(ctx, rec, q.level)
	}
	ds = dcm.NewDataSet(ds.Elements...)
	if slices.Contains(q.returns, dcm.SpecificCharacterSet) || q.all {
		// The encoder decodes the values with it and writes what they are in then.
		ds.Set(dcm.NewText(dcm.SpecificCharacterSet, "CS", charset...))
	}
	return ds, charset, err
}

// knownBelow reports an index key of a level below l.
func knownBelow(t dcm.Tag, l store.Level) bool {
	k, ok := store.Keys()[t]
	return ok && k.Level > l
}

// indexedElement is an index value as an element of its VR.
func indexedElement(t dcm.Tag, v string) dcm.Element {
	vr := dcm.VROf(t)
	if vr == "US" {
		if n, err := strconv.ParseUint(v, 10, 16); err == nil {
			return dcm.NewUS(t, uint16(n))
		}
		return dcm.Element{Tag: t, VR: vr}
	}
	return dcm.NewText(t, vr, v)
}

// extraElements are the elements read from a file that a search answers with: not pixel data,
// nothing left unread.
func extraElements(ds *dcm.DataSet) []dcm.Element {
	if ds == nil {
		return nil
	}
	var out []dcm.Element
	for _, e := range ds.Elements {
		if e.Skipped || e.Fragments != nil || isPixelData(e.Tag) || e.Tag.Element() == 0 {
			continue
		}
		out = append(out, e)
	}
	return out
}

// needsCharset reports text that is not plain ASCII, which only its character set can decode.
func needsCharset(ds *dcm.DataSet) bool {
	for _, e := range ds.Elements {
		for _, b := range e.Value {
			if b >= 0x80 || b == 0x1B {
				return true
			}
		}
	}
	return false
}

// firstInstance returns the first instance of the record's entity at level.
func (s *Server) firstInstance(ctx context.Context, rec store.Record, level store.Level) (store.Instance, error) {
	if level == store.ImageLevel {
		return rec.Instance, nil
	}
	q := store.Query{Level: store.ImageLevel, Matches: []store.Match{{Tag: dcm.StudyInstanceUID, Values: []string{rec.StudyInstanceUID}}}}
	if level == store.SeriesLevel {
		q.Matches = append(q.Matches, store.Match{Tag: dcm.SeriesInstanceUID, Values: []string{rec.SeriesInstanceUID}})
	}
	var first store.Instance
	found := false
	err := s.archive.Find(ctx, q, func(r store.Record) error {
		first, found = r.Instance, true
		return errEnough
	})
	if err != nil && !errors.Is(err, errEnough) {
		return store.Instance{}, err
	}
	if !found {
		return store.Instance{}, store.ErrNotFound
	}
	return first, nil
}

// charsetOf is the Specific Character Set of the record's first instance.
func (s *Server) charsetOf(ctx context.Context, rec store.Record, level store.Level) ([]string, error) {
	in, err := s.firstInstance(ctx, rec, level)
	if err != nil {
		return nil, err
	}
	return strings.Split(in.SpecificCharacterSet, `\`), nil
}

// representative reads attributes the index does not hold from the record's first instance:
// the tags asked for, or every one (all).
func (s *Server) representative(ctx context.Context, rec store.Record, level store.Level, tags []dcm.Tag, all bool) (*dcm.DataSet, error) {
	in, err := s.firstInstance(ctx, rec, level)
	if err != nil {
		return nil, err
	}
	opts := dcm.ParseOptions{SkipValuesOver: s.opts.BulkDataThreshold}
	if !all {
		opts.Keep = dcm.NewTagSet(append(tags, dcm.SpecificCharacterSet)...)
	}
	rc, _, err := s.archive.OpenDataSetAt(ctx, in.SOPInstanceUID, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	ds, err := dcm.ReadDataSet(rc, in.TransferSyntaxUID, opts)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", in.SOPInstanceUID, err)
	}
	return ds, nil
}
