// Package dcm reads and writes the parts of DICOM encoding that the node needs
// without decoding whole objects: the Part-10 file meta information (PS3.10
// §7.1), a streaming scan of a data set for a few top-level attributes
// (PS3.5 §7), and UID syntax checks (PS3.5 §9.1). It does no network and no
// storage I/O of its own; callers hand it readers and writers.
package dcm
