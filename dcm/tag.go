package dcm

import (
	"bytes"
	"fmt"
)

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

// Tags the node reads. Names are the PS3.6 keywords.
const (
	FileMetaInformationGroupLength Tag = 0x00020000
	FileMetaInformationVersion     Tag = 0x00020001
	MediaStorageSOPClassUID        Tag = 0x00020002
	MediaStorageSOPInstanceUID     Tag = 0x00020003
	TransferSyntaxUID              Tag = 0x00020010
	ImplementationClassUID         Tag = 0x00020012
	ImplementationVersionName      Tag = 0x00020013
	SourceApplicationEntityTitle   Tag = 0x00020016

	SpecificCharacterSet      Tag = 0x00080005
	ImageType                 Tag = 0x00080008
	SOPClassUID               Tag = 0x00080016
	SOPInstanceUID            Tag = 0x00080018
	StudyDate                 Tag = 0x00080020
	SeriesDate                Tag = 0x00080021
	ContentDate               Tag = 0x00080023
	StudyTime                 Tag = 0x00080030
	SeriesTime                Tag = 0x00080031
	ContentTime               Tag = 0x00080033
	AccessionNumber           Tag = 0x00080050
	Modality                  Tag = 0x00080060
	Manufacturer              Tag = 0x00080070
	ReferringPhysicianName    Tag = 0x00080090
	StudyDescription          Tag = 0x00081030
	SeriesDescription         Tag = 0x0008103E
	PatientName               Tag = 0x00100010
	PatientID                 Tag = 0x00100020
	IssuerOfPatientID         Tag = 0x00100021
	PatientBirthDate          Tag = 0x00100030
	PatientSex                Tag = 0x00100040
	BodyPartExamined          Tag = 0x00180015
	StudyInstanceUID          Tag = 0x0020000D
	SeriesInstanceUID         Tag = 0x0020000E
	StudyID                   Tag = 0x00200010
	SeriesNumber              Tag = 0x00200011
	InstanceNumber            Tag = 0x00200013
	FrameOfReferenceUID       Tag = 0x00200052
	SamplesPerPixel           Tag = 0x00280002
	PhotometricInterpretation Tag = 0x00280004
	NumberOfFrames            Tag = 0x00280008
	Rows                      Tag = 0x00280010
	Columns                   Tag = 0x00280011
	BitsAllocated             Tag = 0x00280100
	BitsStored                Tag = 0x00280101
	PixelRepresentation       Tag = 0x00280103
	PixelData                 Tag = 0x7FE00010

	Item                     Tag = 0xFFFEE000
	ItemDelimitationItem     Tag = 0xFFFEE00D
	SequenceDelimitationItem Tag = 0xFFFEE0DD
)

// dictVR is the VR of the tags above, needed to interpret values in implicit
// VR streams. Tags it does not know come back with VR "UN".
func dictVR(t Tag) string {
	switch t {
	case FileMetaInformationGroupLength:
		return "UL"
	case FileMetaInformationVersion:
		return "OB"
	case MediaStorageSOPClassUID, MediaStorageSOPInstanceUID, TransferSyntaxUID, ImplementationClassUID,
		SOPClassUID, SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID, FrameOfReferenceUID:
		return "UI"
	case ImplementationVersionName, AccessionNumber, StudyID:
		return "SH"
	case SourceApplicationEntityTitle:
		return "AE"
	case SpecificCharacterSet, ImageType, Modality, PatientSex, BodyPartExamined, PhotometricInterpretation:
		return "CS"
	case StudyDate, SeriesDate, ContentDate, PatientBirthDate:
		return "DA"
	case StudyTime, SeriesTime, ContentTime:
		return "TM"
	case Manufacturer, StudyDescription, SeriesDescription, PatientID, IssuerOfPatientID:
		return "LO"
	case ReferringPhysicianName, PatientName:
		return "PN"
	case SeriesNumber, InstanceNumber, NumberOfFrames:
		return "IS"
	case SamplesPerPixel, Rows, Columns, BitsAllocated, BitsStored, PixelRepresentation:
		return "US"
	case PixelData:
		return "OW"
	}
	return "UN"
}

// undefinedLength is the length value that means "until a delimiter".
const undefinedLength = 0xFFFFFFFF

// hasLongLength reports whether an explicit VR element with this VR has two
// reserved bytes and a 32-bit length (PS3.5 Table 7.1-1).
func hasLongLength(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

func isVRBytes(a, b byte) bool { return a >= 'A' && a <= 'Z' && b >= 'A' && b <= 'Z' }

// trimValue removes the padding of a string value. Trailing spaces and NULs
// are padding for every string VR (NUL is UI's pad byte, and some writers use
// it elsewhere); leading spaces are insignificant too for the VRs PS3.5 says
// so of, and leading is true for those.
func trimValue(b []byte, leading bool) string {
	b = bytes.TrimRight(b, " \x00")
	if leading {
		b = bytes.TrimLeft(b, " ")
	}
	return string(b)
}

// leadingSpaceInsignificant reports the VRs whose leading spaces PS3.5 §6.2
// makes insignificant (text VRs ST, LT, UT, UC keep theirs, as does PN).
func leadingSpaceInsignificant(vr string) bool {
	switch vr {
	case "AE", "CS", "DA", "DS", "DT", "IS", "LO", "SH", "TM", "UI":
		return true
	}
	return false
}
