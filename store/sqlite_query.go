package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/espnode/espnode/dcm"
)

// column describes how a key matches in SQL.
type column struct {
	level Level
	expr  string
	kind  int // text, pn (case-insensitive), number
}

const (
	kindText = iota
	kindPN
	kindNumber
)

func queryColumns() map[dcm.Tag]column {
	return map[dcm.Tag]column{
		dcm.PatientID:              {PatientLevel, "p.patient_id", kindText},
		dcm.IssuerOfPatientID:      {PatientLevel, "p.issuer", kindText},
		dcm.PatientName:            {PatientLevel, "p.patient_name", kindPN},
		dcm.PatientBirthDate:       {PatientLevel, "p.birth_date", kindText},
		dcm.PatientSex:             {PatientLevel, "p.sex", kindText},
		dcm.StudyInstanceUID:       {StudyLevel, "st.study_uid", kindText},
		dcm.StudyDate:              {StudyLevel, "st.study_date", kindText},
		dcm.StudyTime:              {StudyLevel, "st.study_time", kindText},
		dcm.AccessionNumber:        {StudyLevel, "st.accession_number", kindText},
		dcm.StudyID:                {StudyLevel, "st.study_id", kindText},
		dcm.StudyDescription:       {StudyLevel, "st.study_description", kindText},
		dcm.ReferringPhysicianName: {StudyLevel, "st.referring_physician_name", kindPN},
		dcm.SeriesInstanceUID:      {SeriesLevel, "se.series_uid", kindText},
		dcm.Modality:               {SeriesLevel, "se.modality", kindText},
		dcm.SeriesNumber:           {SeriesLevel, "se.series_number", kindNumber},
		dcm.SeriesDescription:      {SeriesLevel, "se.series_description", kindText},
		dcm.SeriesDate:             {SeriesLevel, "se.series_date", kindText},
		dcm.SeriesTime:             {SeriesLevel, "se.series_time", kindText},
		dcm.BodyPartExamined:       {SeriesLevel, "se.body_part_examined", kindText},
		dcm.SOPInstanceUID:         {ImageLevel, "i.sop_instance_uid", kindText},
		dcm.SOPClassUID:            {ImageLevel, "i.sop_class_uid", kindText},
		dcm.InstanceNumber:         {ImageLevel, "i.instance_number", kindNumber},
	}
}

// Matchable reports whether the index can match on a tag at a level (the tag belongs to that
// level or one above it). ModalitiesInStudy matches at study level.
func Matchable(t dcm.Tag, l Level) bool {
	if t == dcm.ModalitiesInStudy {
		return l == StudyLevel
	}
	c, ok := queryColumns()[t]
	return ok && c.level <= l
}

// globPattern turns a DICOM wildcard into a SQLite GLOB pattern: * and ? mean the same, and the
// only other GLOB metacharacter, [, is quoted.
func globPattern(p string) string {
	return strings.ReplaceAll(p, "[", "[[]")
}

func (q Query) where() (string, []any, error) {
	cols := queryColumns()
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
		c, ok := cols[m.Tag]
		if !ok || c.level > q.Level {
			return "", nil, fmt.Errorf("cannot match on %s at %s level", m.Tag, q.Level)
		}
		expr := c.expr
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
			if c.kind == kindPN {
				conds = append(conds, "upper("+expr+") GLOB upper(?)")
			} else {
				conds = append(conds, expr+" GLOB ?")
			}
			args = append(args, globPattern(m.Pattern))
		case len(m.Values) > 0:
			if c.kind == kindNumber {
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
			if c.kind == kindPN {
				expr = "upper(" + expr + ")"
			}
			ph := make([]string, len(m.Values))
			for i, v := range m.Values {
				ph[i] = "?"
				if c.kind == kindPN {
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
	imageColumns   = "i.sop_instance_uid, i.sop_class_uid, COALESCE(i.instance_number, 0), COALESCE(i.num_rows, 0), COALESCE(i.num_columns, 0), COALESCE(i.number_of_frames, 0), i.image_type, i.photometric_interpretation, i.specific_character_set, i.transfer_syntax_uid, i.path, i.size, i.received_at, i.calling_ae, i.called_ae, i.remote_addr"
)

// findSQL builds the statement for a level; counts are correlated subqueries over the indexes.
func findSQL(l Level) string {
	switch l {
	case PatientLevel:
		return `SELECT ` + patientColumns + `,
	(SELECT COUNT(*) FROM study s WHERE s.patient_pk = p.pk),
	(SELECT COUNT(*) FROM series s JOIN study t ON t.pk = s.study_pk WHERE t.patient_pk = p.pk),
	(SELECT COUNT(*) FROM instance i JOIN series s ON s.pk = i.series_pk JOIN study t ON t.pk = s.study_pk WHERE t.patient_pk = p.pk)
FROM patient p`
	case StudyLevel:
		return `SELECT ` + patientColumns + `, ` + studyColumns + `,
	(SELECT COUNT(*) FROM series s WHERE s.study_pk = st.pk),
	(SELECT COUNT(*) FROM instance i JOIN series s ON s.pk = i.series_pk WHERE s.study_pk = st.pk),
	(SELECT COALESCE(GROUP_CONCAT(DISTINCT s.modality), '') FROM series s WHERE s.study_pk = st.pk),
	(SELECT COALESCE(GROUP_CONCAT(DISTINCT i.sop_class_uid), '') FROM instance i JOIN series s ON s.pk = i.series_pk WHERE s.study_pk = st.pk)
FROM study st JOIN patient p ON p.pk = st.patient_pk`
	case SeriesLevel:
		return `SELECT ` + patientColumns + `, ` + studyColumns + `, ` + seriesColumns + `,
	(SELECT COUNT(*) FROM instance i WHERE i.series_pk = se.pk)
FROM series se JOIN study st ON st.pk = se.study_pk JOIN patient p ON p.pk = st.patient_pk`
	}
	return `SELECT ` + patientColumns + `, ` + studyColumns + `, ` + seriesColumns + `, ` + imageColumns + `
FROM instance i JOIN series se ON se.pk = i.series_pk JOIN study st ON st.pk = se.study_pk JOIN patient p ON p.pk = st.patient_pk`
}

func orderSQL(l Level) string {
	switch l {
	case PatientLevel:
		return " ORDER BY p.pk"
	case StudyLevel:
		return " ORDER BY st.study_date, st.study_time, st.pk"
	case SeriesLevel:
		return " ORDER BY se.series_number, se.pk"
	}
	return " ORDER BY i.instance_number, i.pk"
}

func (x *sqliteIndex) find(ctx context.Context, q Query, fn func(Record) error) error {
	where, args, err := q.where()
	if err != nil {
		return fmt.Errorf("find: %w", err)
	}
	rows, err := x.r.QueryContext(ctx, findSQL(q.Level)+where+orderSQL(q.Level), args...)
	if err != nil {
		return fmt.Errorf("find: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r Record
		in := &r.Instance
		dest := []any{&in.PatientID, &in.IssuerOfPatientID, &in.PatientName, &in.PatientBirthDate, &in.PatientSex}
		if q.Level >= StudyLevel {
			dest = append(dest, &in.StudyInstanceUID, &in.StudyDate, &in.StudyTime, &in.AccessionNumber, &in.StudyID, &in.StudyDescription, &in.ReferringPhysicianName)
		}
		if q.Level >= SeriesLevel {
			dest = append(dest, &in.SeriesInstanceUID, &in.Modality, &in.SeriesNumber, &in.SeriesDescription, &in.SeriesDate, &in.SeriesTime, &in.BodyPartExamined)
		}
		var received, modalities, classes string
		switch q.Level {
		case PatientLevel:
			dest = append(dest, &r.RelatedStudies, &r.RelatedSeries, &r.RelatedInstances)
		case StudyLevel:
			dest = append(dest, &r.RelatedSeries, &r.RelatedInstances, &modalities, &classes)
		case SeriesLevel:
			dest = append(dest, &r.RelatedInstances)
		case ImageLevel:
			dest = append(dest, &in.SOPInstanceUID, &in.SOPClassUID, &in.InstanceNumber, &in.Rows, &in.Columns, &in.NumberOfFrames,
				&in.ImageType, &in.PhotometricInterpretation, &in.SpecificCharacterSet, &in.TransferSyntaxUID,
				&in.Path, &in.Size, &received, &in.CallingAE, &in.CalledAE, &in.RemoteAddr)
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
