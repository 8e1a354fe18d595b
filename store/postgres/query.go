package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
)

// columns are the SQL expressions of store.Keys, joined as findSQL joins the tables.
func columns() map[dcm.Tag]string {
	return map[dcm.Tag]string{
		dcm.PatientID:              "p.patient_id",
		dcm.IssuerOfPatientID:      "p.issuer",
		dcm.PatientName:            "p.patient_name",
		dcm.PatientBirthDate:       "p.birth_date",
		dcm.PatientSex:             "p.sex",
		dcm.StudyInstanceUID:       "st.study_uid",
		dcm.StudyDate:              "st.study_date",
		dcm.StudyTime:              "st.study_time",
		dcm.AccessionNumber:        "st.accession_number",
		dcm.StudyID:                "st.study_id",
		dcm.StudyDescription:       "st.study_description",
		dcm.ReferringPhysicianName: "st.referring_physician_name",
		dcm.SeriesInstanceUID:      "se.series_uid",
		dcm.Modality:               "se.modality",
		dcm.SeriesNumber:           "se.series_number",
		dcm.SeriesDescription:      "se.series_description",
		dcm.SeriesDate:             "se.series_date",
		dcm.SeriesTime:             "se.series_time",
		dcm.BodyPartExamined:       "se.body_part_examined",
		dcm.SOPInstanceUID:         "i.sop_instance_uid",
		dcm.SOPClassUID:            "i.sop_class_uid",
		dcm.InstanceNumber:         "i.instance_number",
	}
}

// likePattern turns a DICOM wildcard into a LIKE pattern (escape character \): * is %, ? is _,
// and LIKE's own metacharacters are quoted.
func likePattern(p string) string {
	var b strings.Builder
	for _, r := range p {
		switch r {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// params numbers a statement's parameters as they are added.
type params struct{ args []any }

func (p *params) add(v any) string {
	p.args = append(p.args, v)
	return "$" + strconv.Itoa(len(p.args))
}

func (p *params) list(vs []any) string {
	ph := make([]string, len(vs))
	for i, v := range vs {
		ph[i] = p.add(v)
	}
	return strings.Join(ph, ", ")
}

func where(q store.Query) (string, []any, error) {
	keys, cols := store.Keys(), columns()
	var conds []string
	var p params
	for _, m := range q.Matches {
		if m.Tag == dcm.ModalitiesInStudy {
			if len(m.Values) > 0 {
				vs := make([]any, len(m.Values))
				for i, v := range m.Values {
					vs[i] = v
				}
				conds = append(conds, "EXISTS (SELECT 1 FROM series ms WHERE ms.study_pk = st.pk AND ms.modality IN ("+p.list(vs)+"))")
			} else if m.Pattern != "" {
				conds = append(conds, "EXISTS (SELECT 1 FROM series ms WHERE ms.study_pk = st.pk AND ms.modality LIKE "+p.add(likePattern(m.Pattern))+")")
			}
			continue
		}
		k, ok := keys[m.Tag]
		expr, hasColumn := cols[m.Tag]
		if !ok || !hasColumn || k.Level > q.Level {
			return "", nil, fmt.Errorf("cannot match on %s at %s level", m.Tag, q.Level)
		}
		switch {
		case m.Range:
			if m.Lo != "" {
				conds = append(conds, expr+" >= "+p.add(m.Lo))
			}
			if m.Hi != "" {
				// An upper bound matches every value that starts with it: 20201231 includes
				// 20201231 itself, 1200 includes 120000.5.
				conds = append(conds, "("+expr+" <= "+p.add(m.Hi)+" OR "+expr+" LIKE "+p.add(likePattern(m.Hi)+"%")+")")
			}
			if m.Lo != "" || m.Hi != "" {
				conds = append(conds, expr+" <> ''")
			}
		case m.Pattern != "":
			if k.Kind == store.KeyPersonName {
				conds = append(conds, "upper("+expr+") LIKE upper("+p.add(likePattern(m.Pattern))+")")
			} else {
				conds = append(conds, expr+" LIKE "+p.add(likePattern(m.Pattern)))
			}
		case len(m.Values) > 0:
			vs := make([]any, len(m.Values))
			for i, v := range m.Values {
				if k.Kind == store.KeyNumber {
					n, err := strconv.Atoi(strings.TrimSpace(v))
					if err != nil {
						return "", nil, fmt.Errorf("%s: %q is not a number", m.Tag, v)
					}
					vs[i] = n
				} else {
					vs[i] = v
				}
			}
			if k.Kind == store.KeyPersonName {
				ph := make([]string, len(vs))
				for i, v := range vs {
					ph[i] = "upper(" + p.add(v) + ")"
				}
				conds = append(conds, "upper("+expr+") IN ("+strings.Join(ph, ", ")+")")
				continue
			}
			conds = append(conds, expr+" IN ("+p.list(vs)+")")
		}
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), p.args, nil
}

const (
	patientColumns = "p.patient_id, p.issuer, p.patient_name, p.birth_date, p.sex"
	studyColumns   = "st.study_uid, st.study_date, st.study_time, st.accession_number, st.study_id, st.study_description, st.referring_physician_name"
	seriesColumns  = "se.series_uid, se.modality, COALESCE(se.series_number, 0), se.series_description, se.series_date, se.series_time, se.body_part_examined"
	imageColumns   = "i.sop_instance_uid, i.sop_class_uid, COALESCE(i.instance_number, 0), COALESCE(i.num_rows, 0), COALESCE(i.num_columns, 0), COALESCE(i.number_of_frames, 0), i.image_type, i.photometric_interpretation, i.specific_character_set, i.transfer_syntax_uid, i.path, i.size, i.dataset_offset, i.received_at, i.calling_ae, i.called_ae, i.remote_addr"
)

// findSQL builds the statement for a level; counts are correlated subqueries over the indexes.
// The lists of a study come as arrays, which need no separator that a value could hold.
func findSQL(l store.Level) string {
	switch l {
	case store.PatientLevel:
		return `SELECT ` + patientColumns + `,
	(SELECT COUNT(*) FROM study s WHERE s.patient_pk = p.pk),
	(SELECT COUNT(*) FROM series s JOIN study t ON t.pk = s.study_pk WHERE t.patient_pk = p.pk),
	(SELECT COUNT(*) FROM instance i JOIN series s ON s.pk = i.series_pk JOIN study t ON t.pk = s.study_pk WHERE t.patient_pk = p.pk)
FROM patient p`
	case store.StudyLevel:
		return `SELECT ` + patientColumns + `, ` + studyColumns + `,
	(SELECT COUNT(*) FROM series s WHERE s.study_pk = st.pk),
	(SELECT COUNT(*) FROM instance i JOIN series s ON s.pk = i.series_pk WHERE s.study_pk = st.pk),
	(SELECT COALESCE(array_agg(DISTINCT s.modality) FILTER (WHERE s.modality <> ''), '{}') FROM series s WHERE s.study_pk = st.pk),
	(SELECT COALESCE(array_agg(DISTINCT i.sop_class_uid) FILTER (WHERE i.sop_class_uid <> ''), '{}') FROM instance i JOIN series s ON s.pk = i.series_pk WHERE s.study_pk = st.pk)
FROM study st JOIN patient p ON p.pk = st.patient_pk`
	case store.SeriesLevel:
		return `SELECT ` + patientColumns + `, ` + studyColumns + `, ` + seriesColumns + `,
	(SELECT COUNT(*) FROM instance i WHERE i.series_pk = se.pk)
FROM series se JOIN study st ON st.pk = se.study_pk JOIN patient p ON p.pk = st.patient_pk`
	}
	return `SELECT ` + patientColumns + `, ` + studyColumns + `, ` + seriesColumns + `, ` + imageColumns + `
FROM instance i JOIN series se ON se.pk = i.series_pk JOIN study st ON st.pk = se.study_pk JOIN patient p ON p.pk = st.patient_pk`
}

// orderSQL is store/sqlite's order; NULLS FIRST because SQLite sorts NULL first and PostgreSQL
// last, and COLLATE "C" because SQLite compares bytes whatever the database's locale.
func orderSQL(l store.Level) string {
	switch l {
	case store.PatientLevel:
		return " ORDER BY p.pk"
	case store.StudyLevel:
		return ` ORDER BY st.study_date COLLATE "C", st.study_time COLLATE "C", st.pk`
	case store.SeriesLevel:
		return " ORDER BY se.series_number NULLS FIRST, se.pk"
	}
	return " ORDER BY i.instance_number NULLS FIRST, i.pk"
}

// Find implements store.Index. pgx reads the rows as they come: the result is never held whole.
func (db *DB) Find(ctx context.Context, q store.Query, fn func(store.Record) error) error {
	cond, args, err := where(q)
	if err != nil {
		return fmt.Errorf("find: %w", err)
	}
	rows, err := db.pool.Query(ctx, findSQL(q.Level)+cond+orderSQL(q.Level), args...)
	if err != nil {
		return fmt.Errorf("find: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r store.Record
		in := &r.Instance
		dest := []any{&in.PatientID, &in.IssuerOfPatientID, &in.PatientName, &in.PatientBirthDate, &in.PatientSex}
		if q.Level >= store.StudyLevel {
			dest = append(dest, &in.StudyInstanceUID, &in.StudyDate, &in.StudyTime, &in.AccessionNumber, &in.StudyID, &in.StudyDescription, &in.ReferringPhysicianName)
		}
		if q.Level >= store.SeriesLevel {
			dest = append(dest, &in.SeriesInstanceUID, &in.Modality, &in.SeriesNumber, &in.SeriesDescription, &in.SeriesDate, &in.SeriesTime, &in.BodyPartExamined)
		}
		switch q.Level {
		case store.PatientLevel:
			dest = append(dest, &r.RelatedStudies, &r.RelatedSeries, &r.RelatedInstances)
		case store.StudyLevel:
			dest = append(dest, &r.RelatedSeries, &r.RelatedInstances, &r.ModalitiesInStudy, &r.SOPClassesInStudy)
		case store.SeriesLevel:
			dest = append(dest, &r.RelatedInstances)
		case store.ImageLevel:
			dest = append(dest, &in.SOPInstanceUID, &in.SOPClassUID, &in.InstanceNumber, &in.Rows, &in.Columns, &in.NumberOfFrames,
				&in.ImageType, &in.PhotometricInterpretation, &in.SpecificCharacterSet, &in.TransferSyntaxUID,
				&in.Path, &in.Size, &in.DataSetOffset, &in.ReceivedAt, &in.CallingAE, &in.CalledAE, &in.RemoteAddr)
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("find: %w", err)
		}
		if !in.ReceivedAt.IsZero() {
			in.ReceivedAt = in.ReceivedAt.UTC()
		}
		if len(r.ModalitiesInStudy) == 0 {
			r.ModalitiesInStudy = nil
		}
		if len(r.SOPClassesInStudy) == 0 {
			r.SOPClassesInStudy = nil
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find: %w", err)
	}
	return nil
}
