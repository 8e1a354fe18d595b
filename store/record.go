package store

import (
	"strconv"
	"strings"

	"github.com/espnode/espnode/dcm"
)

// The two tables below are shared by every query front end of the node (C-FIND in scp, QIDO-RS
// in dicomweb), so that a query key means the same thing and a record answers with the same
// values whichever protocol asked.

// MatchElement turns a query key into a matching key (PS3.4 C.2.2.2), by its VR: a range for
// DA, TM and DT values with a hyphen, a pattern for a value with * or ? (never for UI), else a
// single value or, split at backslashes, a list. An empty value, or "*", is universal matching:
// a return key only, and ok is false.
func MatchElement(e dcm.Element) (m Match, ok bool) {
	v := e.Text()
	if v == "" || v == "*" {
		return Match{}, false
	}
	m = Match{Tag: e.Tag}
	switch {
	case (e.VR == "DA" || e.VR == "TM" || e.VR == "DT") && strings.Contains(v, "-"):
		lo, hi, _ := strings.Cut(v, "-")
		m.Range, m.Lo, m.Hi = true, strings.TrimSpace(lo), strings.TrimSpace(hi)
	case e.VR != "UI" && strings.ContainsAny(v, "*?"):
		m.Pattern = v
	default:
		for _, x := range strings.Split(v, `\`) {
			if x = strings.TrimSpace(x); x != "" {
				m.Values = append(m.Values, x)
			}
		}
	}
	return m, true
}

func itoaNonZero(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// Value is the value of a return key for a record found at level, as text (several values
// joined by backslashes, numbers in decimal); "" for a key the index does not hold. Rows and
// Columns, whose VR is binary, come as decimal text too: the caller encodes them.
func (r Record) Value(t dcm.Tag, level Level) string {
	switch t {
	case dcm.QueryRetrieveLevel:
		return level.String()
	case dcm.PatientID:
		return r.PatientID
	case dcm.IssuerOfPatientID:
		return r.IssuerOfPatientID
	case dcm.PatientName:
		return r.PatientName
	case dcm.PatientBirthDate:
		return r.PatientBirthDate
	case dcm.PatientSex:
		return r.PatientSex
	case dcm.NumberOfPatientRelatedStudies:
		return strconv.Itoa(r.RelatedStudies)
	case dcm.NumberOfPatientRelatedSeries:
		return strconv.Itoa(r.RelatedSeries)
	case dcm.NumberOfPatientRelatedInstances:
		return strconv.Itoa(r.RelatedInstances)
	case dcm.StudyInstanceUID:
		return r.StudyInstanceUID
	case dcm.StudyDate:
		return r.StudyDate
	case dcm.StudyTime:
		return r.StudyTime
	case dcm.AccessionNumber:
		return r.AccessionNumber
	case dcm.StudyID:
		return r.StudyID
	case dcm.StudyDescription:
		return r.StudyDescription
	case dcm.ReferringPhysicianName:
		return r.ReferringPhysicianName
	case dcm.ModalitiesInStudy:
		return strings.Join(r.ModalitiesInStudy, `\`)
	case dcm.SOPClassesInStudy:
		return strings.Join(r.SOPClassesInStudy, `\`)
	case dcm.NumberOfStudyRelatedSeries:
		return strconv.Itoa(r.RelatedSeries)
	case dcm.NumberOfStudyRelatedInstances, dcm.NumberOfSeriesRelatedInstances:
		return strconv.Itoa(r.RelatedInstances)
	case dcm.SeriesInstanceUID:
		return r.SeriesInstanceUID
	case dcm.Modality:
		return r.Modality
	case dcm.SeriesNumber:
		return itoaNonZero(r.SeriesNumber)
	case dcm.SeriesDescription:
		return r.SeriesDescription
	case dcm.SeriesDate:
		return r.SeriesDate
	case dcm.SeriesTime:
		return r.SeriesTime
	case dcm.BodyPartExamined:
		return r.BodyPartExamined
	case dcm.SOPInstanceUID:
		return r.SOPInstanceUID
	case dcm.SOPClassUID:
		return r.SOPClassUID
	case dcm.InstanceNumber:
		return itoaNonZero(r.InstanceNumber)
	case dcm.Rows:
		return itoaNonZero(r.Rows)
	case dcm.Columns:
		return itoaNonZero(r.Columns)
	case dcm.NumberOfFrames:
		return itoaNonZero(r.NumberOfFrames)
	case dcm.SpecificCharacterSet:
		return r.SpecificCharacterSet
	case dcm.InstanceAvailability:
		return "ONLINE"
	}
	return ""
}

// Indexed reports whether Record.Value answers the tag from the index at level: the level's
// attributes and those of the levels above it, with the counts and lists derived for it.
func Indexed(t dcm.Tag, level Level) bool {
	switch t {
	case dcm.QueryRetrieveLevel, dcm.InstanceAvailability, dcm.SpecificCharacterSet:
		return true
	case dcm.NumberOfPatientRelatedStudies, dcm.NumberOfPatientRelatedSeries, dcm.NumberOfPatientRelatedInstances:
		return level == PatientLevel
	case dcm.ModalitiesInStudy, dcm.SOPClassesInStudy, dcm.NumberOfStudyRelatedSeries, dcm.NumberOfStudyRelatedInstances:
		return level == StudyLevel
	case dcm.NumberOfSeriesRelatedInstances:
		return level == SeriesLevel
	case dcm.Rows, dcm.Columns, dcm.NumberOfFrames:
		return level == ImageLevel
	}
	k, ok := Keys()[t]
	return ok && k.Level <= level
}
