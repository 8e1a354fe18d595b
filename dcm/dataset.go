package dcm

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// Element is one element of a small data set held in memory: a query identifier or a response.
// Value holds the bytes as they are in little endian; Items holds a sequence's items.
type Element struct {
	Tag   Tag
	VR    string
	Value []byte
	Items [][]Element
}

// Str is the element's value as text, padding trimmed.
func (e Element) Str() string { return trimValue(e.Value, leadingSpaceInsignificant(e.VR)) }

// Query/Retrieve attributes (PS3.4 C.6) beyond those in tag.go.
const (
	QueryRetrieveLevel              Tag = 0x00080052
	RetrieveAETitle                 Tag = 0x00080054
	InstanceAvailability            Tag = 0x00080056
	FailedSOPInstanceUIDList        Tag = 0x00080058
	ModalitiesInStudy               Tag = 0x00080061
	SOPClassesInStudy               Tag = 0x00080062
	InstitutionName                 Tag = 0x00080080
	OtherPatientIDs                 Tag = 0x00101000
	NumberOfPatientRelatedStudies   Tag = 0x00201200
	NumberOfPatientRelatedSeries    Tag = 0x00201202
	NumberOfPatientRelatedInstances Tag = 0x00201204
	NumberOfStudyRelatedSeries      Tag = 0x00201206
	NumberOfStudyRelatedInstances   Tag = 0x00201208
	NumberOfSeriesRelatedInstances  Tag = 0x00201209
	PerformedProcedureStepStartDate Tag = 0x00400244
	PerformedProcedureStepStartTime Tag = 0x00400245
	RequestAttributesSequence       Tag = 0x00400275
	ReferencedStudySequence         Tag = 0x00081110
	ReferencedPatientSequence       Tag = 0x00081120
	AnatomicRegionSequence          Tag = 0x00082218
	ProcedureCodeSequence           Tag = 0x00081032
	ContentLabel                    Tag = 0x00700080
	ContentDescription              Tag = 0x00700081
	InstanceCreationDate            Tag = 0x00080012
	InstanceCreationTime            Tag = 0x00080013
	AcquisitionDate                 Tag = 0x00080022
	AcquisitionTime                 Tag = 0x00080032
	PatientAge                      Tag = 0x00101010
	StationName                     Tag = 0x00081010
	Laterality                      Tag = 0x00200060
	ImageComments                   Tag = 0x00204000
)

// VROf is the VR of a tag this package knows, "UN" otherwise; implicit VR data sets need it.
func VROf(t Tag) string {
	if vr := dictVR(t); vr != "UN" {
		return vr
	}
	switch t {
	case QueryRetrieveLevel, InstanceAvailability, ModalitiesInStudy, Laterality:
		return "CS"
	case RetrieveAETitle:
		return "AE"
	case FailedSOPInstanceUIDList, SOPClassesInStudy:
		return "UI"
	case InstitutionName, OtherPatientIDs, ContentDescription:
		return "LO"
	case StationName:
		return "SH"
	case NumberOfPatientRelatedStudies, NumberOfPatientRelatedSeries, NumberOfPatientRelatedInstances,
		NumberOfStudyRelatedSeries, NumberOfStudyRelatedInstances, NumberOfSeriesRelatedInstances:
		return "IS"
	case PerformedProcedureStepStartDate, InstanceCreationDate, AcquisitionDate:
		return "DA"
	case PerformedProcedureStepStartTime, InstanceCreationTime, AcquisitionTime:
		return "TM"
	case RequestAttributesSequence, ReferencedStudySequence, ReferencedPatientSequence, AnatomicRegionSequence, ProcedureCodeSequence:
		return "SQ"
	case ContentLabel:
		return "CS"
	case PatientAge:
		return "AS"
	case ImageComments:
		return "LT"
	}
	if t.Element() == 0 {
		return "UL"
	}
	return "UN"
}

// maxIdentifierLength bounds a data set decoded whole in memory; identifiers are a few KB.
const maxIdentifierLength = 1 << 20

// ParseDataSet decodes a small data set (a query identifier) in implicit or explicit VR little
// endian. Sequences are decoded, defined or undefined length.
func ParseDataSet(b []byte, transferSyntaxUID string) ([]Element, error) {
	if len(b) > maxIdentifierLength {
		return nil, fmt.Errorf("%w: data set of %d bytes exceeds %d", ErrMalformed, len(b), maxIdentifierLength)
	}
	var explicit bool
	switch transferSyntaxUID {
	case ImplicitVRLittleEndian:
	case ExplicitVRLittleEndian:
		explicit = true
	default:
		return nil, fmt.Errorf("parse data set: transfer syntax %s not supported for identifiers", transferSyntaxUID)
	}
	p := dsParser{b: b, explicit: explicit}
	elems, err := p.elements(0, false)
	if err != nil {
		return nil, fmt.Errorf("%w: offset %d: %v", ErrMalformed, p.off, err)
	}
	return elems, nil
}

type dsParser struct {
	b        []byte
	off      int
	explicit bool
}

func (p *dsParser) need(n int) error {
	if n < 0 || p.off+n > len(p.b) {
		return fmt.Errorf("truncated")
	}
	return nil
}

// elements reads until the end of the buffer, or an item delimiter when inItem is set.
func (p *dsParser) elements(depth int, inItem bool) ([]Element, error) {
	if depth > 8 {
		return nil, fmt.Errorf("sequences nested deeper than 8")
	}
	var out []Element
	for p.off < len(p.b) {
		if err := p.need(8); err != nil {
			return nil, err
		}
		tag := NewTag(binary.LittleEndian.Uint16(p.b[p.off:]), binary.LittleEndian.Uint16(p.b[p.off+2:]))
		if tag == ItemDelimitationItem {
			p.off += 8
			if !inItem {
				return nil, fmt.Errorf("item delimiter outside an item")
			}
			return out, nil
		}
		if tag.Group() == 0xFFFE {
			return nil, fmt.Errorf("%s outside a sequence", tag)
		}
		vr, length, err := p.header(tag)
		if err != nil {
			return nil, err
		}
		e := Element{Tag: tag, VR: vr}
		if vr == "SQ" || (length == undefinedLength && vr == "UN") {
			e.VR = "SQ"
			if e.Items, err = p.items(length, depth); err != nil {
				return nil, fmt.Errorf("%s: %v", tag, err)
			}
		} else {
			if length == undefinedLength {
				return nil, fmt.Errorf("%s: undefined length outside a sequence", tag)
			}
			if err := p.need(int(length)); err != nil {
				return nil, fmt.Errorf("%s: value of %d bytes: %v", tag, length, err)
			}
			e.Value = p.b[p.off : p.off+int(length)]
			p.off += int(length)
		}
		out = append(out, e)
	}
	if inItem {
		return out, nil // a defined-length item ends with its bytes
	}
	return out, nil
}

func (p *dsParser) header(tag Tag) (vr string, length uint32, err error) {
	if !p.explicit {
		length = binary.LittleEndian.Uint32(p.b[p.off+4:])
		p.off += 8
		return VROf(tag), length, nil
	}
	vr = string(p.b[p.off+4 : p.off+6])
	if !isVRBytes(vr[0], vr[1]) {
		return "", 0, fmt.Errorf("%s: invalid VR %q", tag, vr)
	}
	if hasLongLength(vr) {
		if err := p.need(12); err != nil {
			return "", 0, err
		}
		length = binary.LittleEndian.Uint32(p.b[p.off+8:])
		p.off += 12
		return vr, length, nil
	}
	length = uint32(binary.LittleEndian.Uint16(p.b[p.off+6:]))
	p.off += 8
	return vr, length, nil
}

func (p *dsParser) items(length uint32, depth int) ([][]Element, error) {
	end := len(p.b)
	if length != undefinedLength {
		if err := p.need(int(length)); err != nil {
			return nil, err
		}
		end = p.off + int(length)
	}
	var items [][]Element
	for p.off < end {
		if err := p.need(8); err != nil {
			return nil, err
		}
		tag := NewTag(binary.LittleEndian.Uint16(p.b[p.off:]), binary.LittleEndian.Uint16(p.b[p.off+2:]))
		n := binary.LittleEndian.Uint32(p.b[p.off+4:])
		p.off += 8
		switch tag {
		case SequenceDelimitationItem:
			return items, nil
		case Item:
		default:
			return nil, fmt.Errorf("%s where an item was expected", tag)
		}
		var item []Element
		var err error
		if n == undefinedLength {
			item, err = p.elements(depth+1, true)
		} else {
			if err := p.need(int(n)); err != nil {
				return nil, err
			}
			sub := dsParser{b: p.b[:p.off+int(n)], off: p.off, explicit: p.explicit}
			item, err = sub.elements(depth+1, false)
			p.off = sub.off
		}
		if err != nil {
			return nil, err
		}
		items = append(items, item)
	}
	if length == undefinedLength {
		return nil, fmt.Errorf("sequence without delimiter")
	}
	return items, nil
}

// AppendDataSet encodes elements, sorted by tag, in implicit or explicit VR little endian, with
// defined lengths everywhere.
func AppendDataSet(b []byte, elems []Element, transferSyntaxUID string) []byte {
	explicit := transferSyntaxUID != ImplicitVRLittleEndian
	sorted := append([]Element(nil), elems...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Tag < sorted[j].Tag })
	for _, e := range sorted {
		vr := e.VR
		if vr == "" {
			vr = VROf(e.Tag)
		}
		var value []byte
		if vr == "SQ" {
			for _, item := range e.Items {
				body := AppendDataSet(nil, item, transferSyntaxUID)
				value = binary.LittleEndian.AppendUint16(value, 0xFFFE)
				value = binary.LittleEndian.AppendUint16(value, 0xE000)
				value = binary.LittleEndian.AppendUint32(value, uint32(len(body)))
				value = append(value, body...)
			}
		} else {
			value = e.Value
			if len(value)%2 == 1 {
				value = append(append([]byte{}, value...), padByte(vr))
			}
		}
		b = binary.LittleEndian.AppendUint16(b, e.Tag.Group())
		b = binary.LittleEndian.AppendUint16(b, e.Tag.Element())
		switch {
		case !explicit:
			b = binary.LittleEndian.AppendUint32(b, uint32(len(value)))
		case hasLongLength(vr):
			b = append(b, vr[0], vr[1], 0, 0)
			b = binary.LittleEndian.AppendUint32(b, uint32(len(value)))
		default:
			b = append(b, vr[0], vr[1])
			b = binary.LittleEndian.AppendUint16(b, uint16(len(value)))
		}
		b = append(b, value...)
	}
	return b
}

// StrElement builds a text element; the VR comes from VROf.
func StrElement(t Tag, values ...string) Element {
	return Element{Tag: t, VR: VROf(t), Value: []byte(strings.Join(values, `\`))}
}

// Find returns the element with the tag.
func Find(elems []Element, t Tag) (Element, bool) {
	for _, e := range elems {
		if e.Tag == t {
			return e, true
		}
	}
	return Element{}, false
}
