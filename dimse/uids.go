package dimse

import "github.com/espnode/espnode/dcm"

// VerificationSOPClass is the SOP class of C-ECHO (PS3.4 A.4).
const VerificationSOPClass = "1.2.840.10008.1.1"

// The uncompressed transfer syntaxes, as dcm's transfer syntax table has them: kept here under
// these names for the callers of dimse.
const (
	ImplicitVRLittleEndian         = dcm.ImplicitVRLittleEndian
	ExplicitVRLittleEndian         = dcm.ExplicitVRLittleEndian
	DeflatedExplicitVRLittleEndian = dcm.DeflatedExplicitVRLittleEndian
	ExplicitVRBigEndian            = dcm.ExplicitVRBigEndian
)
