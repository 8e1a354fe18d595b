package dcm

// Facts about value representations (PS3.5 §6.2) that encoding and decoding need. VRs are kept
// as their two-letter strings, as they appear in explicit VR streams.

// UndefinedLength is the length value that means "until a delimiter" (PS3.5 §7.1).
const UndefinedLength = 0xFFFFFFFF

// hasLongLength reports whether an explicit VR element with this VR has two reserved bytes and
// a 32-bit length (PS3.5 Table 7.1-1) rather than a 16-bit length.
func hasLongLength(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

func isVRBytes(a, b byte) bool { return a >= 'A' && a <= 'Z' && b >= 'A' && b <= 'Z' }

// padByte is what makes an odd-length value even: NUL for UI and the binary VRs, a space for
// text (PS3.5 §6.2).
func padByte(vr string) byte {
	switch vr {
	case "UI", "OB", "OD", "OF", "OL", "OV", "OW", "UN", "SQ", "US", "SS", "UL", "SL", "SV", "UV", "FL", "FD", "AT":
		return 0
	}
	return ' '
}

// unitSize is the size of one binary value of the VR, whose bytes a change of byte order
// reverses; 0 for VRs whose values are bytes or text.
func unitSize(vr string) int {
	switch vr {
	case "US", "SS", "OW", "AT":
		// AT is a pair of 16-bit numbers, each swapped on its own.
		return 2
	case "UL", "SL", "FL", "OF", "OL":
		return 4
	case "FD", "OD", "SV", "UV", "OV":
		return 8
	}
	return 0
}

// isText reports the VRs whose values are character strings.
func isText(vr string) bool {
	switch vr {
	case "AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT":
		return true
	}
	return false
}

// isMultiValuedText reports the text VRs whose backslash separates values; in LT, ST, UT and UR
// it is an ordinary character (PS3.5 §6.2).
func isMultiValuedText(vr string) bool {
	return isText(vr) && vr != "LT" && vr != "ST" && vr != "UT" && vr != "UR"
}

// leadingSpaceInsignificant reports the VRs whose leading spaces PS3.5 §6.2 makes insignificant
// (the text VRs ST, LT, UT, UC keep theirs, as does PN).
func leadingSpaceInsignificant(vr string) bool {
	switch vr {
	case "AE", "CS", "DA", "DS", "DT", "IS", "LO", "SH", "TM", "UI":
		return true
	}
	return false
}

// trimValue removes the padding of a string value. Trailing spaces and NULs are padding for
// every string VR (NUL is UI's pad byte, and some writers use it elsewhere); leading spaces are
// insignificant too for the VRs PS3.5 says so of, and leading is true for those.
func trimValue(b []byte, leading bool) string {
	end := len(b)
	for end > 0 && (b[end-1] == ' ' || b[end-1] == 0) {
		end--
	}
	start := 0
	if leading {
		for start < end && b[start] == ' ' {
			start++
		}
	}
	return string(b[start:end])
}
