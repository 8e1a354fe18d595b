package sqlite

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

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

// globPattern turns a DICOM wildcard into a SQLite GLOB pattern: * and ? mean the same, and the
// only other GLOB metacharacter, [, is quoted.
func globPattern(p string) string {
	return strings.ReplaceAll(p, "[", "[[]")
}

func where(q store.Query) (string, []any, error) {
	keys, cols := store.Keys(), columns()
	var conds []string
	var args []any
	for _, m := range q.Matches {
		if m.Tag == dcm.ModalitiesInStudy {
			if len(m.Values) > 0 {
				conds = append(conds, "EXISTS (SELECT 1 FROM series ms WHERE ms.study_pk = st.pk AND ms.modality IN ("+placeholders(len(m.Values))+"))")
				for _, v := range m.Values {
					args = append(args, v)
				}
			} else if m.Pattern != "" {
				conds = append(conds, "EXISTS (SELECT 1 FROM series ms WHERE ms.study_pk = st.pk AND ms.modality GLOB ?)")
				args = append(args, globPattern(m.Pattern))
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
				conds = append(conds, expr+" >= ?")
				args = append(args, m.Lo)
			}
			if m.Hi != "" {
				// An upper bound matches every value that starts with it: 20201231 includes
				// 20201231 itself, 1200 includes 120000.5.
				conds = append(conds, "("+expr+" <= ? OR "+expr+" GLOB ?)")
				args = append(args, m.Hi, globPattern(m.Hi)+"*")
			}
			if m.Lo != "" || m.Hi != "" {
				conds = append(conds, expr+" <> ''")
			}
		case m.Pattern != "":
			if k.Kind == store.KeyPersonName {
				conds = append(conds, "upper("+expr+") GLOB upper(?)")
			} else {
				conds = append(conds, expr+" GLOB ?")
			}
			args = append(args, globPattern(m.Pattern))
		case len(m.Values) > 0:
			if k.Kind == store.KeyNumber {
				var nums []any
				for _, v := range m.Values {
					n, err := strconv.Atoi(strings.TrimSpace(v))
					if err != nil {
						return "", nil, fmt.Errorf("%s: %q is not a number", m.Tag, v)
					}
					nums = append(nums, n)
				}
				conds = append(conds, expr+" IN ("+placeholders(len(nums))+")")
				args = append(args, nums...)
				continue
			}
			if k.Kind == store.KeyPersonName {
				expr = "upper(" + expr + ")"
			}
			ph := make([]string, len(m.Values))
			for i, v := range m.Values {
				ph[i] = "?"
				if k.Kind == store.KeyPersonName {
					ph[i] = "upper(?)"
				}
				args = append(args, v)
			}
			conds = append(conds, expr+" IN ("+strings.Join(ph, ", ")+")")
		}
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

const (
	patientColumns = "p.patient_id, p.issuer, p.patient_name, p.birth_date, p.sex"
	studyColumns   = "st.study_uid, st.study_date, st.study_time, st.accession_number, st.study_id, st.study_description, st.referring_physician_name"
	seriesColumns  = "se.series_uid, se.modality, COALESCE(se.series_number, 0), se.series_description, se.series_date, se.series_time, se.body_part_examined"
	imageColumns   = "i.sop_instance_uid, i.sop_class_uid, COALESCE(i.instance_number, 0), COALESCE(i.num_rows, 0), COALESCE(i.num_columns, 0), COALESCE(i.number_of_frames, 0), i.image_type, i.photometric_interpretation, i.specific_character_set, i.transfer_syntax_uid, i.path, i.size, i.dataset_offset, i.received_at, i.calling_ae, i.called_ae, i.remote_addr"
)

// findSQL builds the statement for a level; counts are correlated subqueries over the indexes.
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
	(SELECT COALESCE(GROUP_CONCAT(DISTINCT s.modality), '') FROM series s WHERE s.study_pk = st.pk),
	(SELECT COALESCE(GROUP_CONCAT(DISTINCT i.sop_class_uid), '') FROM instance i JOIN series s ON s.pk = i.series_pk WHERE s.study_pk = st.pk)
FROM study st JOIN patient p ON p.pk = st.patient_pk`
	case store.SeriesLevel:
		return `SELECT ` + patientColumns + `, ` + studyColumns + `, ` + seriesColumns + `,
	(SELECT COUNT(*) FROM instance i WHERE i.series_pk = se.pk)
FROM series se JOIN study st ON st.pk = se.study_pk JOIN patient p ON p.pk = st.patient_pk`
	}
	return `SELECT ` + patientColumns + `, ` + studyColumns + `, ` + seriesColumns + `, ` + imageColumns + `
FROM instance i JOIN series se ON se.pk = i.series_pk JOIN study st ON st.pk = se.study_pk JOIN patient p ON p.pk = st.patient_pk`
}

func orderSQL(l store.Level) string {
	switch l {
	case store.PatientLevel:
		return " ORDER BY p.pk"
	case store.StudyLevel:
		return " ORDER BY st.study_date, st.study_time, st.pk"
	case store.SeriesLevel:
		return " ORDER BY se.series_number, se.pk"
	}
	return " ORDER BY i.instance_number, i.pk"
}

// Find implements store.Index.
func (x *Engine) Find(ctx context.Context, q store.Query, fn func(store.Record) error) error {
	cond, args, err := where(q)
	if err != nil {
		return fmt.Errorf("find: %w", err)
	}
	rows, err := x.r.QueryContext(ctx, findSQL(q.Level)+cond+orderSQL(q.Level), args...)
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
		var received, modalities, classes string
		switch q.Level {
		case store.PatientLevel:
			dest = append(dest, &r.RelatedStudies, &r.RelatedSeries, &r.RelatedInstances)
		case store.StudyLevel:
			dest = append(dest, &r.RelatedSeries, &r.RelatedInstances, &modalities, &classes)
		case store.SeriesLevel:
			dest = append(dest, &r.RelatedInstances)
		case store.ImageLevel:
			dest = append(dest, &in.SOPInstanceUID, &in.SOPClassUID, &in.InstanceNumber, &in.Rows, &in.Columns, &in.NumberOfFrames,
				&in.ImageType, &in.PhotometricInterpretation, &in.SpecificCharacterSet, &in.TransferSyntaxUID,
				&in.Path, &in.Size, &in.DataSetOffset, &received, &in.CallingAE, &in.CalledAE, &in.RemoteAddr)
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("find: %w", err)
		}
		if received != "" {
			in.ReceivedAt, _ = time.Parse(time.RFC3339Nano, received)
		}
		r.ModalitiesInStudy = splitList(modalities)
		r.SOPClassesInStudy = splitList(classes)
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find: %w", err)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}
