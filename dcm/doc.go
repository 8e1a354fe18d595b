// Package dcm is the DICOM data set codec of the node (PS3.5, PS3.10): one bounded streaming
// element reader (Reader), the in-memory data set built on it (DataSet, Element, ReadDataSet,
// ReadFile) with its one set of typed accessors, one writer (Writer, Encode), the Part-10 file
// meta information, the dictionary of the tags the node names, and the table of every transfer
// syntax PS3.6 lists. Every limit on what a stream may cost is in Limits. It does no network
// and no storage I/O of its own beyond reading a named file; callers hand it readers and writers.
package dcm
