package dcm

import "encoding/binary"

// UIDs of the transfer syntaxes the node's code names. Every transfer syntax PS3.6 lists is in
// the table below; these constants are for the ones code refers to.
const (
	ImplicitVRLittleEndian                         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian                         = "1.2.840.10008.1.2.1"
	EncapsulatedUncompressedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.98"
	DeflatedExplicitVRLittleEndian                 = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian                            = "1.2.840.10008.1.2.2"
	JPEGBaseline8Bit                               = "1.2.840.10008.1.2.4.50"
	JPEGExtended12Bit                              = "1.2.840.10008.1.2.4.51"
	JPEGLossless                                   = "1.2.840.10008.1.2.4.57"
	JPEGLosslessSV1                                = "1.2.840.10008.1.2.4.70"
	JPEGLSLossless                                 = "1.2.840.10008.1.2.4.80"
	JPEGLSNearLossless                             = "1.2.840.10008.1.2.4.81"
	JPEG2000Lossless                               = "1.2.840.10008.1.2.4.90"
	JPEG2000                                       = "1.2.840.10008.1.2.4.91"
	JPIPReferencedDeflate                          = "1.2.840.10008.1.2.4.95"
	JPEGXLLossless                                 = "1.2.840.10008.1.2.4.110"
	JPEGXLJPEGRecompression                        = "1.2.840.10008.1.2.4.111"
	JPEGXL                                         = "1.2.840.10008.1.2.4.112"
	HTJ2KLossless                                  = "1.2.840.10008.1.2.4.201"
	HTJ2KLosslessRPCL                              = "1.2.840.10008.1.2.4.202"
	HTJ2K                                          = "1.2.840.10008.1.2.4.203"
	JPIPHTJ2KReferencedDeflate                     = "1.2.840.10008.1.2.4.205"
	RLELossless                                    = "1.2.840.10008.1.2.5"
	DeflatedImageFrameCompression                  = "1.2.840.10008.1.2.8.1"
)

// TransferSyntax is what PS3.5 and PS3.6 say of a transfer syntax: how its data set is encoded
// and what its pixel data is.
type TransferSyntax struct {
	UID  string
	Name string
	// BigEndian and ExplicitVR say how the data set is encoded (PS3.5 §7, §A).
	BigEndian  bool
	ExplicitVR bool
	// Deflated data sets are one deflate stream after the file meta (PS3.5 A.5).
	Deflated bool
	// Encapsulated pixel data is a sequence of fragments (PS3.5 A.4); otherwise it is native.
	Encapsulated bool
	// Lossless means no pixel value is changed by the encoding. Syntaxes that allow lossy
	// compression (JPEG 2000, HTJ2K, JPEG XL) are not lossless, even when an instance happens to be.
	Lossless bool
	// Retired syntaxes may still be received from old devices.
	Retired bool
	// Storable is false for the syntaxes that do not encode a stored object's data set: the
	// SMPTE ST 2110 ones (DICOM-RTV streams), the retired MIME and XML encodings, and the
	// referenced-pixel-data (JPIP) ones, whose pixels live outside the object.
	Storable bool
}

// ByteOrder returns the byte order of the syntax's data set.
func (ts TransferSyntax) ByteOrder() binary.ByteOrder {
	if ts.BigEndian {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// transferSyntaxes lists every transfer syntax of PS3.6 Table A-1, current and retired.
var transferSyntaxes = []TransferSyntax{
	{UID: ImplicitVRLittleEndian, Name: "Implicit VR Little Endian", Lossless: true, Storable: true},
	{UID: ExplicitVRLittleEndian, Name: "Explicit VR Little Endian", ExplicitVR: true, Lossless: true, Storable: true},
	{UID: EncapsulatedUncompressedExplicitVRLittleEndian, Name: "Encapsulated Uncompressed Explicit VR Little Endian", ExplicitVR: true, Encapsulated: true, Lossless: true, Storable: true},
	{UID: DeflatedExplicitVRLittleEndian, Name: "Deflated Explicit VR Little Endian", ExplicitVR: true, Deflated: true, Lossless: true, Storable: true},
	{UID: ExplicitVRBigEndian, Name: "Explicit VR Big Endian", BigEndian: true, ExplicitVR: true, Lossless: true, Retired: true, Storable: true},
	encapsulated(JPEGBaseline8Bit, "JPEG Baseline (Process 1)", false, false),
	encapsulated(JPEGExtended12Bit, "JPEG Extended (Process 2 & 4)", false, false),
	encapsulated("1.2.840.10008.1.2.4.52", "JPEG Extended (Process 3 & 5)", false, true),
	encapsulated("1.2.840.10008.1.2.4.53", "JPEG Spectral Selection, Non-Hierarchical (Process 6 & 8)", false, true),
	encapsulated("1.2.840.10008.1.2.4.54", "JPEG Spectral Selection, Non-Hierarchical (Process 7 & 9)", false, true),
	encapsulated("1.2.840.10008.1.2.4.55", "JPEG Full Progression, Non-Hierarchical (Process 10 & 12)", false, true),
	encapsulated("1.2.840.10008.1.2.4.56", "JPEG Full Progression, Non-Hierarchical (Process 11 & 13)", false, true),
	encapsulated(JPEGLossless, "JPEG Lossless, Non-Hierarchical (Process 14)", true, false),
	encapsulated("1.2.840.10008.1.2.4.58", "JPEG Lossless, Non-Hierarchical (Process 15)", true, true),
	encapsulated("1.2.840.10008.1.2.4.59", "JPEG Extended, Hierarchical (Process 16 & 18)", false, true),
	encapsulated("1.2.840.10008.1.2.4.60", "JPEG Extended, Hierarchical (Process 17 & 19)", false, true),
	encapsulated("1.2.840.10008.1.2.4.61", "JPEG Spectral Selection, Hierarchical (Process 20 & 22)", false, true),
	encapsulated("1.2.840.10008.1.2.4.62", "JPEG Spectral Selection, Hierarchical (Process 21 & 23)", false, true),
	encapsulated("1.2.840.10008.1.2.4.63", "JPEG Full Progression, Hierarchical (Process 24 & 26)", false, true),
	encapsulated("1.2.840.10008.1.2.4.64", "JPEG Full Progression, Hierarchical (Process 25 & 27)", false, true),
	encapsulated("1.2.840.10008.1.2.4.65", "JPEG Lossless, Hierarchical (Process 28)", true, true),
	encapsulated("1.2.840.10008.1.2.4.66", "JPEG Lossless, Hierarchical (Process 29)", true, true),
	encapsulated(JPEGLosslessSV1, "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])", true, false),
	encapsulated(JPEGLSLossless, "JPEG-LS Lossless Image Compression", true, false),
	encapsulated(JPEGLSNearLossless, "JPEG-LS Lossy (Near-Lossless) Image Compression", false, false),
	encapsulated(JPEG2000Lossless, "JPEG 2000 Image Compression (Lossless Only)", true, false),
	encapsulated(JPEG2000, "JPEG 2000 Image Compression", false, false),
	encapsulated("1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)", true, false),
	encapsulated("1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2 Multi-component Image Compression", false, false),
	{UID: "1.2.840.10008.1.2.4.94", Name: "JPIP Referenced", ExplicitVR: true},
	{UID: JPIPReferencedDeflate, Name: "JPIP Referenced Deflate", ExplicitVR: true, Deflated: true},
	encapsulated("1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level", false, false),
	encapsulated("1.2.840.10008.1.2.4.100.1", "Fragmentable MPEG2 Main Profile / Main Level", false, false),
	encapsulated("1.2.840.10008.1.2.4.101", "MPEG2 Main Profile / High Level", false, false),
	encapsulated("1.2.840.10008.1.2.4.101.1", "Fragmentable MPEG2 Main Profile / High Level", false, false),
	encapsulated("1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 High Profile / Level 4.1", false, false),
	encapsulated("1.2.840.10008.1.2.4.102.1", "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.1", false, false),
	encapsulated("1.2.840.10008.1.2.4.103", "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1", false, false),
	encapsulated("1.2.840.10008.1.2.4.103.1", "Fragmentable MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1", false, false),
	encapsulated("1.2.840.10008.1.2.4.104", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video", false, false),
	encapsulated("1.2.840.10008.1.2.4.104.1", "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video", false, false),
	encapsulated("1.2.840.10008.1.2.4.105", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video", false, false),
	encapsulated("1.2.840.10008.1.2.4.105.1", "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video", false, false),
	encapsulated("1.2.840.10008.1.2.4.106", "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2", false, false),
	encapsulated("1.2.840.10008.1.2.4.106.1", "Fragmentable MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2", false, false),
	encapsulated("1.2.840.10008.1.2.4.107", "HEVC/H.265 Main Profile / Level 5.1", false, false),
	encapsulated("1.2.840.10008.1.2.4.108", "HEVC/H.265 Main 10 Profile / Level 5.1", false, false),
	encapsulated(JPEGXLLossless, "JPEG XL Lossless", true, false),
	encapsulated(JPEGXLJPEGRecompression, "JPEG XL JPEG Recompression", false, false),
	encapsulated(JPEGXL, "JPEG XL", false, false),
	encapsulated(HTJ2KLossless, "High-Throughput JPEG 2000 Image Compression (Lossless Only)", true, false),
	encapsulated(HTJ2KLosslessRPCL, "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)", true, false),
	encapsulated(HTJ2K, "High-Throughput JPEG 2000 Image Compression", false, false),
	{UID: "1.2.840.10008.1.2.4.204", Name: "JPIP HTJ2K Referenced", ExplicitVR: true},
	{UID: JPIPHTJ2KReferencedDeflate, Name: "JPIP HTJ2K Referenced Deflate", ExplicitVR: true, Deflated: true},
	encapsulated(RLELossless, "RLE Lossless", true, false),
	{UID: "1.2.840.10008.1.2.6.1", Name: "RFC 2557 MIME encapsulation", Retired: true},
	{UID: "1.2.840.10008.1.2.6.2", Name: "XML Encoding", Retired: true},
	{UID: "1.2.840.10008.1.2.7.1", Name: "SMPTE ST 2110-20 Uncompressed Progressive Active Video", ExplicitVR: true, Lossless: true},
	{UID: "1.2.840.10008.1.2.7.2", Name: "SMPTE ST 2110-20 Uncompressed Interlaced Active Video", ExplicitVR: true, Lossless: true},
	{UID: "1.2.840.10008.1.2.7.3", Name: "SMPTE ST 2110-30 PCM Digital Audio", ExplicitVR: true, Lossless: true},
	encapsulated(DeflatedImageFrameCompression, "Deflated Image Frame Compression", true, false),
	{UID: "1.2.840.10008.1.20", Name: "Papyrus 3 Implicit VR Little Endian", Retired: true},
}

// encapsulated describes a syntax with encapsulated pixel data in an explicit VR little endian data set:
// every compressed one.
func encapsulated(uid, name string, lossless, retired bool) TransferSyntax {
	return TransferSyntax{UID: uid, Name: name, ExplicitVR: true, Encapsulated: true, Lossless: lossless, Retired: retired, Storable: true}
}

// LookupTransferSyntax returns what PS3.6 says of the transfer syntax uid, and false when it
// lists no such syntax.
func LookupTransferSyntax(uid string) (TransferSyntax, bool) {
	for _, ts := range transferSyntaxes {
		if ts.UID == uid {
			return ts, true
		}
	}
	return TransferSyntax{}, false
}

// TransferSyntaxes returns every transfer syntax PS3.6 lists.
func TransferSyntaxes() []TransferSyntax { return append([]TransferSyntax(nil), transferSyntaxes...) }

// TransferSyntaxName returns the PS3.6 name of a transfer syntax, or "unknown".
func TransferSyntaxName(uid string) string {
	if ts, ok := LookupTransferSyntax(uid); ok {
		return ts.Name
	}
	return "unknown"
}

// encodingOf returns how a data set in the transfer syntax is encoded. A UID PS3.6 does not
// list is read as explicit VR little endian, the encoding of every syntax added since 1993
// (PS3.5 §10: new syntaxes may only differ in pixel data).
func encodingOf(uid string) (encoding, bool) {
	ts, ok := LookupTransferSyntax(uid)
	if !ok {
		return encoding{explicit: true}, false
	}
	return encoding{bigEndian: ts.BigEndian, explicit: ts.ExplicitVR, deflated: ts.Deflated}, true
}

// encoding is how a data set's elements are encoded.
type encoding struct {
	bigEndian bool
	explicit  bool
	deflated  bool
}

func (e encoding) order() binary.ByteOrder {
	if e.bigEndian {
		return binary.BigEndian
	}
	return binary.LittleEndian
}
