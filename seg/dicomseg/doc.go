// Package dicomseg encodes segmentation masks as DICOM Segmentation objects (SOP class
// 1.2.840.10008.5.1.4.1.1.66.4, PS3.3 A.51 and C.8.20) and decodes them again.
//
// Encode takes a Source, the few attributes of the segmented image that a SEG copies or
// references (ReadSource or SourceFromDataset fill it from a file), one Segment per segmented
// property with a mask per source frame, and Options. It writes explicit VR little endian with
// its own small writer: elements sorted in every data set and item, defined lengths, values
// padded to even length with the pad byte of their VR, and BINARY frames packed least
// significant bit first with no gap between frames.
//
// Decode reads SEGs in implicit, explicit or deflated explicit VR little endian, including
// those made by dcmqi and highdicom, into frames of pixels and the segment each holds. It is
// meant for tests and checks, not as a general DICOM reader.
package dicomseg
