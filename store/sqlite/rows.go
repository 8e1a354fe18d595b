package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/espnode/espnode/store"
)

// The patient, study and series rows of a Put are nearly always the ones the previous Put of the
// same series wrote, unchanged. rowCache remembers what the engine last wrote (or read) for
// each, so that a Put whose attributes change nothing skips their statements altogether: in the
// steady state a Put runs two statements (the instance's earlier row, the instance's upsert)
// instead of eight. The cache is exact, not a guess: an entry holds the row as stored after
// the commit that wrote it, and a Put is compared with it by the rule the upserts apply (an
// empty value keeps the stored one), so skipping a statement skips only a write that would
// have changed nothing.
//
// It is only used by the committer, inside its transactions, which hold the one writer
// connection; Remove, which deletes rows, bumps its generation inside its own transaction, and
// a batch that committed across such a bump drops what it learnt instead of adding it.

// maxCachedRows bounds each of the cache's maps; a full map is emptied (a miss costs only the
// statements it saves).
const maxCachedRows = 4096

type patientKey struct{ id, issuer string }

type patientRow struct {
	pk               int64
	name, birth, sex string
}

type studyRow struct {
	pk, patientPK                           int64
	date, time, accession, id, desc, refPhy string
}

type seriesRow struct {
	pk, studyPK                int64
	modality                   string
	number                     sql.NullInt64
	desc, date, time, bodyPart string
}

type rowCache struct {
	mu       sync.Mutex
	gen      uint64
	patients map[patientKey]patientRow
	studies  map[string]studyRow
	series   map[string]seriesRow
}

func newRowCache() *rowCache {
	return &rowCache{patients: map[patientKey]patientRow{}, studies: map[string]studyRow{}, series: map[string]seriesRow{}}
}

// invalidate forgets every row; called inside a transaction that deletes rows.
func (c *rowCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.patients)
	clear(c.studies)
	clear(c.series)
}

// rowView is one batch's view: the cache as it was, what the batch's kept Puts wrote, and what
// the current Put writes (kept or dropped with its savepoint).
type rowView struct {
	c        *rowCache
	gen      uint64
	patients map[patientKey]patientRow
	studies  map[string]studyRow
	series   map[string]seriesRow
	// Of the current Put: rows written, not yet kept.
	pendP []patientRow
	pendK []patientKey
	pendS []studyRow
	pendU []string
	pendR []seriesRow
	pendV []string
	// deleted is set when a Put of the batch deleted rows (an instance that moved): the
	// cache is then emptied rather than updated.
	deleted, pendDeleted bool
}

func (c *rowCache) view() *rowView {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &rowView{c: c, gen: c.gen, patients: map[patientKey]patientRow{}, studies: map[string]studyRow{}, series: map[string]seriesRow{}}
}

func (v *rowView) patient(k patientKey) (patientRow, bool) {
	if r, ok := v.patients[k]; ok {
		return r, true
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	r, ok := v.c.patients[k]
	return r, ok
}

func (v *rowView) study(uid string) (studyRow, bool) {
	if r, ok := v.studies[uid]; ok {
		return r, true
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	r, ok := v.c.studies[uid]
	return r, ok
}

func (v *rowView) seriesRow(uid string) (seriesRow, bool) {
	if r, ok := v.series[uid]; ok {
		return r, true
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	r, ok := v.c.series[uid]
	return r, ok
}

// keep adds the current Put's rows to the batch's; drop forgets them (its savepoint was rolled
// back).
func (v *rowView) keep() {
	for i, k := range v.pendK {
		v.patients[k] = v.pendP[i]
	}
	for i, k := range v.pendU {
		v.studies[k] = v.pendS[i]
	}
	for i, k := range v.pendV {
		v.series[k] = v.pendR[i]
	}
	v.deleted = v.deleted || v.pendDeleted
	v.drop()
}

func (v *rowView) drop() {
	v.pendP, v.pendK, v.pendS, v.pendU, v.pendR, v.pendV = v.pendP[:0], v.pendK[:0], v.pendS[:0], v.pendU[:0], v.pendR[:0], v.pendV[:0]
	v.pendDeleted = false
}

// commit records the batch's rows in the cache once its transaction committed.
func (v *rowView) commit() {
	if v.deleted {
		v.c.invalidate()
		return
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	if v.c.gen != v.gen {
		return // rows were deleted meanwhile: what this batch read may be gone
	}
	for _, m := range []int{len(v.c.patients) + len(v.patients), len(v.c.studies) + len(v.studies), len(v.c.series) + len(v.series)} {
		if m > maxCachedRows {
			clear(v.c.patients)
			clear(v.c.studies)
			clear(v.c.series)
			break
		}
	}
	for k, r := range v.patients {
		v.c.patients[k] = r
	}
	for k, r := range v.studies {
		v.c.studies[k] = r
	}
	for k, r := range v.series {
		v.c.series[k] = r
	}
}

// keeps reports whether the upsert of stored with a new value would leave it as it is: an empty
// value keeps the stored one (the upserts' COALESCE(NULLIF(new, ”), old)).
func keeps(stored, v string) bool { return v == "" || v == stored }

func (r patientRow) unchangedBy(in *store.Instance) bool {
	return keeps(r.name, in.PatientName) && keeps(r.birth, in.PatientBirthDate) && keeps(r.sex, in.PatientSex)
}

func (r studyRow) unchangedBy(in *store.Instance, patientPK int64) bool {
	return r.patientPK == patientPK && keeps(r.date, in.StudyDate) && keeps(r.time, in.StudyTime) &&
		keeps(r.accession, in.AccessionNumber) && keeps(r.id, in.StudyID) && keeps(r.desc, in.StudyDescription) &&
		keeps(r.refPhy, in.ReferringPhysicianName)
}

func (r seriesRow) unchangedBy(in *store.Instance, studyPK int64) bool {
	return r.studyPK == studyPK && keeps(r.modality, in.Modality) && (in.SeriesNumber == 0 || r.number.Valid && r.number.Int64 == int64(in.SeriesNumber)) &&
		keeps(r.desc, in.SeriesDescription) && keeps(r.date, in.SeriesDate) && keeps(r.time, in.SeriesTime) &&
		keeps(r.bodyPart, in.BodyPartExamined)
}

// run writes the rows of one Put and returns what it replaced.
func (st *stmts) run(ctx context.Context, tx *sql.Tx, v *rowView, in store.Instance) (store.Replaced, error) {
	var prev store.Replaced
	now := in.ReceivedAt.UTC().Format(time.RFC3339Nano)

	// The study's patient before this Put, and the instance's series: a replaced instance may
	// leave them empty.
	var prevPatient, prevSeries sql.NullInt64
	if s, ok := v.study(in.StudyInstanceUID); ok {
		prevPatient = sql.NullInt64{Int64: s.patientPK, Valid: true}
	} else {
		err := tx.StmtContext(ctx, st.studyPatient).QueryRowContext(ctx, in.StudyInstanceUID).Scan(&prevPatient)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return prev, err
		}
	}
	var prevReceived string
	err := tx.StmtContext(ctx, st.instanceSeries).QueryRowContext(ctx, in.SOPInstanceUID).Scan(&prevSeries, &prev.Path, &prevReceived)
	switch {
	case err == nil:
		prev.Found = true
		if prev.ReceivedAt, err = time.Parse(time.RFC3339Nano, prevReceived); err != nil {
			return prev, fmt.Errorf("received_at %q: %w", prevReceived, err)
		}
	case !errors.Is(err, sql.ErrNoRows):
		return prev, err
	}

	pk := patientKey{in.PatientID, in.IssuerOfPatientID}
	p, ok := v.patient(pk)
	if !ok || !p.unchangedBy(&in) {
		err := tx.StmtContext(ctx, st.upsertPatient).QueryRowContext(ctx, in.PatientID, in.IssuerOfPatientID, in.PatientName,
			in.PatientBirthDate, in.PatientSex).Scan(&p.pk, &p.name, &p.birth, &p.sex)
		if errors.Is(err, sql.ErrNoRows) {
			err = tx.StmtContext(ctx, st.pkPatient).QueryRowContext(ctx, in.PatientID, in.IssuerOfPatientID).Scan(&p.pk, &p.name, &p.birth, &p.sex)
		}
		if err != nil {
			return prev, fmt.Errorf("patient: %w", err)
		}
		v.pendK, v.pendP = append(v.pendK, pk), append(v.pendP, p)
	}
	s, ok := v.study(in.StudyInstanceUID)
	if !ok || !s.unchangedBy(&in, p.pk) {
		err := tx.StmtContext(ctx, st.upsertStudy).QueryRowContext(ctx, in.StudyInstanceUID, p.pk, in.StudyDate, in.StudyTime,
			in.AccessionNumber, in.StudyID, in.StudyDescription, in.ReferringPhysicianName, now).Scan(s.scan()...)
		if errors.Is(err, sql.ErrNoRows) {
			err = tx.StmtContext(ctx, st.pkStudy).QueryRowContext(ctx, in.StudyInstanceUID).Scan(s.scan()...)
		}
		if err != nil {
			return prev, fmt.Errorf("study: %w", err)
		}
		v.pendU, v.pendS = append(v.pendU, in.StudyInstanceUID), append(v.pendS, s)
	}
	r, ok := v.seriesRow(in.SeriesInstanceUID)
	if !ok || !r.unchangedBy(&in, s.pk) {
		err := tx.StmtContext(ctx, st.upsertSeries).QueryRowContext(ctx, in.SeriesInstanceUID, s.pk, in.Modality,
			nullIfZero(in.SeriesNumber), in.SeriesDescription, in.SeriesDate, in.SeriesTime, in.BodyPartExamined,
			now).Scan(r.scan()...)
		if errors.Is(err, sql.ErrNoRows) {
			err = tx.StmtContext(ctx, st.pkSeries).QueryRowContext(ctx, in.SeriesInstanceUID).Scan(r.scan()...)
		}
		if err != nil {
			return prev, fmt.Errorf("series: %w", err)
		}
		v.pendV, v.pendR = append(v.pendV, in.SeriesInstanceUID), append(v.pendR, r)
	}
	if _, err := tx.StmtContext(ctx, st.upsertInstance).ExecContext(ctx, in.SOPInstanceUID, r.pk, in.SOPClassUID,
		nullIfZero(in.InstanceNumber), nullIfZero(in.Rows), nullIfZero(in.Columns), nullIfZero(in.NumberOfFrames),
		in.ImageType, in.PhotometricInterpretation, in.SpecificCharacterSet, in.TransferSyntaxUID,
		in.Path, in.Size, in.DataSetOffset, now, in.CallingAE, in.CalledAE, in.RemoteAddr); err != nil {
		return prev, fmt.Errorf("instance: %w", err)
	}

	if prevSeries.Valid && prevSeries.Int64 != r.pk {
		v.pendDeleted = true
		if err := deleteEmpty(ctx, tx, prevSeries.Int64); err != nil {
			return prev, err
		}
	}
	if prevPatient.Valid && prevPatient.Int64 != p.pk {
		v.pendDeleted = true
		if _, err := tx.ExecContext(ctx, deleteEmptyPatient, prevPatient.Int64, prevPatient.Int64); err != nil {
			return prev, err
		}
	}
	return prev, nil
}

// scan lists the destinations of a study row as the statements return it.
func (s *studyRow) scan() []any {
	return []any{&s.pk, &s.patientPK, &s.date, &s.time, &s.accession, &s.id, &s.desc, &s.refPhy}
}

func (r *seriesRow) scan() []any {
	return []any{&r.pk, &r.studyPK, &r.modality, &r.number, &r.desc, &r.date, &r.time, &r.bodyPart}
}
