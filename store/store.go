// Package store is the node's archive: DICOM instances as Part-10 objects in an Archive, named by
// validated UIDs, and rows describing them in an Index. Put returns only once the object and its
// row are durable, so a caller may then answer C-STORE Success; a hook in the row's transaction
// lets the job queue commit with it. The engines live in subpackages: fsarchive (files), sqlite
// (index and queue on SQLite) and datadir, which opens both in one data directory. See
// docs/STORAGE.md and docs/DESIGN.md.
package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/rs/zerolog"
)

// Errors that callers map to DIMSE statuses. Every error Put returns wraps at
// most one of them; errors of the archive or the index wrap ErrOutOfResources
// and keep the underlying error (errors.Is(err, syscall.ENOSPC) works). An
// error wrapping none of them came from the Data reader or the context: the
// peer went away, there is no one to answer.
var (
	// ErrInvalidUID: a UID that must name an object or be indexed is not a
	// valid PS3.5 UID.
	ErrInvalidUID = errors.New("invalid UID")
	// ErrMismatch: the data set's SOP Class or SOP Instance UID differs from
	// the command's (A900).
	ErrMismatch = errors.New("data set does not match the command's SOP class or instance")
	// ErrCannotUnderstand: the data set cannot be parsed, or lacks a UID the
	// archive needs (C000).
	ErrCannotUnderstand = errors.New("cannot understand the data set")
	// ErrDuplicate: the SOP Instance UID is already stored and the policy is
	// reject.
	ErrDuplicate = errors.New("duplicate SOP instance")
	// ErrOutOfResources: the archive or the index failed, disk full included
	// (A700).
	ErrOutOfResources = errors.New("out of resources")
	// ErrNotFound: no instance with that SOP Instance UID. It is also an fs.ErrNotExist, as a
	// missing object of the archive is, so that a caller outside the store (a segmentation
	// reading its source) can tell "not there" from "not reachable now" without knowing the store.
	ErrNotFound error = notFound{}
)

type notFound struct{}

func (notFound) Error() string        { return "instance not found" }
func (notFound) Is(target error) bool { return target == fs.ErrNotExist }

// Duplicate policies: what Put does with a SOP Instance UID already stored.
const (
	// DuplicatesOverwrite replaces the stored object and its index row.
	DuplicatesOverwrite = "overwrite"
	// DuplicatesKeep keeps the stored instance and reports it with
	// Instance.Duplicate set; the caller answers Success.
	DuplicatesKeep = "keep"
	// DuplicatesReject keeps the stored instance and returns ErrDuplicate.
	DuplicatesReject = "reject"
)

// DefaultImplementationClassUID is written to file meta when Options gives
// none. It is a UUID-derived UID (PS3.5 §B.2), so it needs no registered root.
const DefaultImplementationClassUID = "2.25.32695292250842657094188327672136193842"

// ObjectsDir is the folder of keys under which instances are archived:
// ObjectsDir/<study>/<series>/<instance>.dcm.
const ObjectsDir = "archive"

// Options configure a Store.
type Options struct {
	// Archive keeps the objects and Index their rows; the Store closes both.
	Archive Archive
	Index   Index
	// Duplicates is the duplicate policy; "" means DuplicatesOverwrite.
	Duplicates string
	// Logger receives the store's log lines.
	Logger zerolog.Logger
	// ImplementationClassUID and ImplementationVersionName go into the file
	// meta of every object the store writes (PS3.10 §7.1).
	ImplementationClassUID    string
	ImplementationVersionName string
}

// PutRequest is one instance to store, as a C-STORE delivers it.
type PutRequest struct {
	// From the C-STORE-RQ command: Affected SOP Class and Instance UID.
	SOPClassUID    string
	SOPInstanceUID string
	// The transfer syntax of the presentation context Data arrived on.
	TransferSyntaxUID string
	// The association: calling and called AE titles and the peer's address.
	CallingAE, CalledAE, RemoteAddr string
	// Data is the data set exactly as received, without file meta, ending at
	// the data set's end. Put streams it; it is never held in memory whole.
	Data io.Reader
	// InTx, when set, runs inside the index transaction that records the
	// instance, after its rows are written: what it does through tx commits
	// with the instance or not at all (the pipeline creates its job so). Its
	// error fails the Put like any index failure (ErrOutOfResources). It does
	// not run when the instance is kept as a duplicate.
	InTx func(ctx context.Context, tx Tx, inst Instance) error
	// Overwrite applies the overwrite duplicate policy to this Put whatever
	// the store's policy is: the node's own derived objects (a job's rerun
	// replacing its SEG) replace their earlier version.
	Overwrite bool
}

// Instance is one stored instance as the index records it. Text values
// (padding trimmed) are UTF-8: the values of the VRs Specific Character Set
// applies to (PN, LO, SH) are decoded from the instance's character sets
// (dcm.DecodeText), so that every engine stores and matches one form whatever each
// instance was sent in, and a query in any character set compares with it.
// SpecificCharacterSet keeps what the instance declared. Numbers are 0 when
// absent.
type Instance struct {
	PatientID         string
	IssuerOfPatientID string
	PatientName       string
	PatientBirthDate  string
	PatientSex        string

	StudyInstanceUID       string
	StudyDate              string
	StudyTime              string
	AccessionNumber        string
	StudyID                string
	StudyDescription       string
	ReferringPhysicianName string

	SeriesInstanceUID string
	Modality          string
	SeriesNumber      int
	SeriesDescription string
	SeriesDate        string
	SeriesTime        string
	BodyPartExamined  string

	SOPInstanceUID            string
	SOPClassUID               string
	InstanceNumber            int
	Rows                      int
	Columns                   int
	NumberOfFrames            int
	ImageType                 string
	PhotometricInterpretation string
	SpecificCharacterSet      string
	TransferSyntaxUID         string

	// ViewPosition, ProtocolName and AnatomicRegion are read for routing only (pipeline's
	// rules on anatomy): Put and Describe fill them from the data set, the index does not keep
	// them, so Get and Find leave them empty. AnatomicRegion holds "SCHEME:VALUE" for each
	// item of the Anatomic Region Sequence, joined by backslashes as DICOM joins values (a
	// string, so that Instance stays comparable).
	ViewPosition   string
	ProtocolName   string
	AnatomicRegion string

	// Path is the object's key in the archive: a relative path with
	// slashes (ObjectsDir/<study>/<series>/<instance>.dcm).
	Path string
	// Size is the object's size in bytes, file meta included.
	Size int64
	// DataSetOffset is where the data set starts in the object: the length
	// of the file meta the store wrote. 0 for rows indexed before it was
	// recorded (OpenDataSet then reads past the meta).
	DataSetOffset int64
	ReceivedAt    time.Time
	CallingAE     string
	CalledAE      string
	RemoteAddr    string

	// Duplicate is set by Put when the policy is keep and the instance was
	// already stored: the returned Instance is the stored one, and Data was
	// not stored.
	Duplicate bool
}

// Store is the archive. Its methods are safe for concurrent use.
type Store struct {
	archive      Archive
	index        Index
	dup          string
	log          zerolog.Logger
	implClassUID string
	implVersion  string

	// uidLocks serialise Puts of the same SOP Instance UID (striped by
	// hash), so the duplicate decision, the commit and the index update of
	// one UID happen as one step.
	uidLocks [64]sync.Mutex

	// readers and writers hold the buffers of Puts that finished: allocating
	// and clearing 96 KiB for every instance was a tenth of a small
	// C-STORE's CPU time (pprof of bench/ingest).
	readers, writers sync.Pool
	// scan is scanTags(), made once: only read from then on.
	scan dcm.TagSet
}

const (
	readBufferSize  = 32 << 10 // what the data set's reader takes from the network at a time
	writeBufferSize = 64 << 10 // what goes to the archive in one write
)

// New returns a Store over an archive and an index, which it owns from then
// on (Close closes them); on error it closes neither.
func New(opts Options) (*Store, error) {
	if opts.Archive == nil || opts.Index == nil {
		return nil, errors.New("store: an archive and an index are both needed")
	}
	s := &Store{
		archive:      opts.Archive,
		index:        opts.Index,
		dup:          opts.Duplicates,
		log:          opts.Logger,
		implClassUID: opts.ImplementationClassUID,
		implVersion:  opts.ImplementationVersionName,
		scan:         scanTags(),
	}
	if err := CheckDuplicates(s.dup); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if s.dup == "" {
		s.dup = DuplicatesOverwrite
	}
	if s.implClassUID == "" {
		s.implClassUID = DefaultImplementationClassUID
	}
	// A trial header checks the implementation UID and version name once,
	// rather than failing every Put.
	if err := dcm.WriteFileMeta(io.Discard, dcm.FileMeta{
		MediaStorageSOPClassUID:    "1.2",
		MediaStorageSOPInstanceUID: "1.2",
		TransferSyntaxUID:          dcm.ExplicitVRLittleEndian,
		ImplementationClassUID:     s.implClassUID,
		ImplementationVersionName:  s.implVersion,
	}); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return s, nil
}

// CheckDuplicates reports whether policy is a duplicate policy ("" is the
// default, overwrite).
func CheckDuplicates(policy string) error {
	switch policy {
	case "", DuplicatesOverwrite, DuplicatesKeep, DuplicatesReject:
		return nil
	}
	return fmt.Errorf("duplicates policy %q: must be overwrite, keep or reject", policy)
}

// Queue returns the job queue on the index's database, when the index engine
// has one: jobs enqueued through a Put's Tx commit with its rows.
func (s *Store) Queue() (Queue, bool) {
	q, ok := s.index.(Queue)
	return q, ok
}

// Close closes the index, then the archive.
func (s *Store) Close() error {
	return errors.Join(s.index.Close(), s.archive.Close())
}

// maxIndexedValue is the longest value Put holds while it streams a data set to disk:
// the index needs short attributes, never pixel data.
const maxIndexedValue = 64 << 10

// scanTags are the attributes Put reads from the data set for the index.
func scanTags() dcm.TagSet {
	return dcm.NewTagSet(
		dcm.SpecificCharacterSet, dcm.ImageType, dcm.SOPClassUID, dcm.SOPInstanceUID,
		dcm.StudyDate, dcm.SeriesDate, dcm.StudyTime, dcm.SeriesTime, dcm.AccessionNumber,
		dcm.Modality, dcm.ReferringPhysicianName, dcm.StudyDescription, dcm.SeriesDescription,
		dcm.PatientName, dcm.PatientID, dcm.IssuerOfPatientID, dcm.PatientBirthDate, dcm.PatientSex,
		dcm.BodyPartExamined, dcm.StudyInstanceUID, dcm.SeriesInstanceUID, dcm.StudyID,
		dcm.SeriesNumber, dcm.InstanceNumber, dcm.PhotometricInterpretation, dcm.NumberOfFrames,
		dcm.Rows, dcm.Columns, dcm.ViewPosition, dcm.ProtocolName, dcm.AnatomicRegionSequence,
	)
}

// Put stores one instance: it writes file meta and the data set into a new
// archive object while reading Data (checking the data set as it goes),
// commits the object under ObjectsDir/<study>/<series>/<instance>.dcm (durable
// when Commit returns), and records it in the index, in that order. When Put
// returns nil the instance is durable. On error nothing of it is left in the
// archive.
//
// Put may return before reading all of Data: when a UID in req is invalid,
// when the policy is keep or reject and the instance is already stored, and
// on any error. The caller discards the rest of the data set then.
func (s *Store) Put(ctx context.Context, req PutRequest) (Instance, error) {
	uid := req.SOPInstanceUID
	for _, f := range []struct{ name, v string }{
		{"SOP Class UID", req.SOPClassUID},
		{"SOP Instance UID", req.SOPInstanceUID},
		{"Transfer Syntax UID", req.TransferSyntaxUID},
	} {
		if err := dcm.CheckUID(f.v); err != nil {
			return Instance{}, fmt.Errorf("store %q: %s: %w: %w", uid, f.name, ErrInvalidUID, err)
		}
	}
	if req.Data == nil {
		return Instance{}, fmt.Errorf("store %s: no data", uid)
	}
	if err := ctx.Err(); err != nil {
		return Instance{}, fmt.Errorf("store %s: %w", uid, err)
	}
	dup := s.dup
	if req.Overwrite {
		dup = DuplicatesOverwrite
	}
	if dup != DuplicatesOverwrite {
		// Decide early, so a duplicate is not received for nothing; the
		// decision is made again under the UID's lock below.
		if inst, err := s.duplicate(ctx, uid, dup); inst != nil || err != nil {
			return deref(inst), err
		}
	}

	obj, err := s.archive.Create(ctx)
	if err != nil {
		return Instance{}, resourceErr(uid, err)
	}
	committed := false
	defer func() {
		if !committed {
			if err := obj.Abort(); err != nil {
				s.log.Warn().Err(err).Str("sop_instance_uid", uid).Msg("cannot discard an unfinished object")
			}
		}
	}()
	inst, err := s.receive(ctx, req, obj)
	if err != nil {
		return Instance{}, err
	}

	l := &s.uidLocks[stripe(uid)]
	l.Lock()
	defer l.Unlock()
	unlock, err := s.lockInstance(ctx, uid)
	if err != nil {
		return Instance{}, err
	}
	defer unlock()
	if dup != DuplicatesOverwrite {
		if dupl, err := s.duplicate(ctx, uid, dup); dupl != nil || err != nil {
			return deref(dupl), err
		}
	}

	// From here on the work is finished even if ctx is cancelled (the peer
	// left after sending everything): stopping between the commit and the
	// index update would leave an object the index does not know.
	ctx = context.WithoutCancel(ctx)
	inst.Path = objectKey(inst.StudyInstanceUID, inst.SeriesInstanceUID, inst.SOPInstanceUID)
	if err := obj.Commit(ctx, inst.Path); err != nil {
		return Instance{}, resourceErr(uid, err)
	}
	committed = true
	var inTx func(Tx) error
	if req.InTx != nil {
		inTx = func(tx Tx) error { return req.InTx(ctx, tx, inst) }
	}
	// The index says what the row replaced, in its own transaction: no read before every Put.
	old, err := s.index.Put(ctx, inst, inTx)
	if err != nil {
		// The old row, if any, still points at its object: remove the new one unless it
		// replaced that very object. When that cannot be told, the object stays: one nothing
		// points at is harmless (a retry overwrites it), a row without its object is not.
		if row, gerr := s.index.Get(ctx, uid); errors.Is(gerr, ErrNotFound) || gerr == nil && row.Path != inst.Path {
			s.removeObject(ctx, inst.Path)
		}
		return Instance{}, resourceErr(uid, err)
	}
	if old.Found {
		ev := s.log.Info().Str("sop_instance_uid", uid).Str("calling_ae", req.CallingAE).
			Time("previously_received", old.ReceivedAt)
		if old.Path != inst.Path {
			// The instance moved to another series: the old object goes.
			s.removeObject(ctx, old.Path)
			ev = ev.Str("old_path", old.Path)
		}
		ev.Msg("duplicate SOP instance overwritten")
	}
	return inst, nil
}

// objectKey is the archive key of an instance.
func objectKey(study, series, sop string) string {
	return path.Join(ObjectsDir, study, series, sop+".dcm")
}

// lockInstance takes the UID's lock in an index several nodes share (InstanceLocker); on a
// node's own index the caller's stripe lock is all there is to take.
func (s *Store) lockInstance(ctx context.Context, uid string) (func(), error) {
	lk, ok := s.index.(InstanceLocker)
	if !ok {
		return func() {}, nil
	}
	unlock, err := lk.LockInstance(ctx, uid)
	if err != nil {
		return nil, resourceErr(uid, fmt.Errorf("instance lock: %w", err))
	}
	return unlock, nil
}

func (s *Store) removeObject(ctx context.Context, key string) {
	if err := s.archive.Remove(ctx, key); err != nil {
		s.log.Warn().Err(err).Str("path", key).Msg("cannot remove an object the index does not point at")
	}
}

func deref(p *Instance) Instance {
	if p == nil {
		return Instance{}
	}
	return *p
}

// duplicate applies the keep or reject policy: it returns the stored instance
// (keep), ErrDuplicate (reject), or nil, nil when uid is not stored.
func (s *Store) duplicate(ctx context.Context, uid, policy string) (*Instance, error) {
	inst, err := s.index.Get(ctx, uid)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, resourceErr(uid, err)
	case policy == DuplicatesReject:
		return nil, fmt.Errorf("store %s: %w (received %s)", uid, ErrDuplicate, inst.ReceivedAt.Format(time.RFC3339))
	}
	s.log.Info().Str("sop_instance_uid", uid).Msg("duplicate SOP instance: kept the stored one")
	inst.Duplicate = true
	return &inst, nil
}

func stripe(uid string) int {
	h := fnv.New32a()
	h.Write([]byte(uid))
	return int(h.Sum32() % 64)
}

// receive writes file meta and the data set to obj, scanning the data set on
// the way, and returns the instance to index (Path not yet set).
func (s *Store) receive(ctx context.Context, req PutRequest, obj io.Writer) (Instance, error) {
	uid := req.SOPInstanceUID
	meta := dcm.FileMeta{
		MediaStorageSOPClassUID:    req.SOPClassUID,
		MediaStorageSOPInstanceUID: req.SOPInstanceUID,
		TransferSyntaxUID:          req.TransferSyntaxUID,
		ImplementationClassUID:     s.implClassUID,
		ImplementationVersionName:  s.implVersion,
	}
	// The calling AE is optional in file meta; one the association let
	// through but the AE syntax does not is left out rather than refused.
	if dcm.CheckAE(req.CallingAE) == nil {
		meta.SourceApplicationEntityTitle = strings.TrimSpace(req.CallingAE)
	}
	var mb bytes.Buffer
	if err := dcm.WriteFileMeta(&mb, meta); err != nil {
		return Instance{}, fmt.Errorf("store %s: %w", uid, err)
	}
	w, _ := s.writers.Get().(*bufio.Writer)
	if w == nil {
		w = bufio.NewWriterSize(obj, writeBufferSize)
	} else {
		w.Reset(obj)
	}
	defer func() {
		w.Reset(nil) // hold on to the buffer, not to the object
		s.writers.Put(w)
	}()
	if _, err := w.Write(mb.Bytes()); err != nil {
		return Instance{}, resourceErr(uid, err)
	}
	tee := &teeReader{ctx: ctx, r: req.Data, w: w}
	// The reader's buffer reads ahead of the parse, which is harmless: every byte of the data
	// set goes to the archive, and Data ends where the data set does.
	br, _ := s.readers.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReaderSize(tee, readBufferSize)
	} else {
		br.Reset(tee)
	}
	defer func() {
		br.Reset(nil)
		s.readers.Put(br)
	}()
	opts := dcm.ParseOptions{Keep: s.scan, SkipValuesOver: maxIndexedValue}
	if namer, ok := obj.(ObjectNamer); ok {
		// The UIDs of the key come before pixel data: name it then, so that a large object
		// goes to its key directly. An invalid UID names nothing; the checks below refuse it.
		opts.Past, opts.OnPast = dcm.SeriesInstanceUID, func(ds *dcm.DataSet) {
			study, series, sop := ds.String(dcm.StudyInstanceUID), ds.String(dcm.SeriesInstanceUID), ds.String(dcm.SOPInstanceUID)
			if sop == uid && dcm.CheckUID(study) == nil && dcm.CheckUID(series) == nil {
				namer.Name(objectKey(study, series, sop))
			}
		}
	}
	attrs, err := dcm.ReadDataSet(br, req.TransferSyntaxUID, opts)
	switch {
	case tee.werr != nil:
		return Instance{}, resourceErr(uid, tee.werr)
	case tee.rerr != nil:
		return Instance{}, fmt.Errorf("store %s: receiving the data set: %w", uid, tee.rerr)
	case err != nil:
		return Instance{}, fmt.Errorf("store %s: %w: %w", uid, ErrCannotUnderstand, err)
	}

	inst := instanceFrom(attrs)
	for _, f := range []struct{ name, v string }{
		{"SOP Class UID (0008,0016)", inst.SOPClassUID},
		{"SOP Instance UID (0008,0018)", inst.SOPInstanceUID},
		{"Study Instance UID (0020,000D)", inst.StudyInstanceUID},
		{"Series Instance UID (0020,000E)", inst.SeriesInstanceUID},
	} {
		if f.v == "" {
			return Instance{}, fmt.Errorf("store %s: %w: no %s", uid, ErrCannotUnderstand, f.name)
		}
	}
	if inst.SOPClassUID != req.SOPClassUID || inst.SOPInstanceUID != req.SOPInstanceUID {
		return Instance{}, fmt.Errorf("store %s: %w: the data set has SOP class %s, instance %s; the command %s, %s",
			uid, ErrMismatch, inst.SOPClassUID, inst.SOPInstanceUID, req.SOPClassUID, req.SOPInstanceUID)
	}
	for _, f := range []struct{ name, v string }{
		{"Study Instance UID", inst.StudyInstanceUID},
		{"Series Instance UID", inst.SeriesInstanceUID},
	} {
		if err := dcm.CheckUID(f.v); err != nil {
			return Instance{}, fmt.Errorf("store %s: %s: %w: %w", uid, f.name, ErrInvalidUID, err)
		}
	}

	if err := w.Flush(); err != nil {
		return Instance{}, resourceErr(uid, err)
	}
	inst.TransferSyntaxUID = req.TransferSyntaxUID
	inst.DataSetOffset = int64(mb.Len())
	inst.Size = inst.DataSetOffset + tee.n
	inst.ReceivedAt = time.Now().UTC()
	inst.CallingAE = strings.TrimSpace(req.CallingAE)
	inst.CalledAE = strings.TrimSpace(req.CalledAE)
	inst.RemoteAddr = req.RemoteAddr
	return inst, nil
}

func instanceFrom(a *dcm.DataSet) Instance {
	num := func(t dcm.Tag) int {
		n, _ := a.Int(t)
		return int(n)
	}
	return Instance{
		PatientID:                 a.Unicode(dcm.PatientID),
		IssuerOfPatientID:         a.Unicode(dcm.IssuerOfPatientID),
		PatientName:               a.Unicode(dcm.PatientName),
		PatientBirthDate:          a.String(dcm.PatientBirthDate),
		PatientSex:                a.String(dcm.PatientSex),
		StudyInstanceUID:          a.String(dcm.StudyInstanceUID),
		StudyDate:                 a.String(dcm.StudyDate),
		StudyTime:                 a.String(dcm.StudyTime),
		AccessionNumber:           a.Unicode(dcm.AccessionNumber),
		StudyID:                   a.Unicode(dcm.StudyID),
		StudyDescription:          a.Unicode(dcm.StudyDescription),
		ReferringPhysicianName:    a.Unicode(dcm.ReferringPhysicianName),
		SeriesInstanceUID:         a.String(dcm.SeriesInstanceUID),
		Modality:                  a.String(dcm.Modality),
		SeriesNumber:              num(dcm.SeriesNumber),
		SeriesDescription:         a.Unicode(dcm.SeriesDescription),
		SeriesDate:                a.String(dcm.SeriesDate),
		SeriesTime:                a.String(dcm.SeriesTime),
		BodyPartExamined:          a.String(dcm.BodyPartExamined),
		SOPInstanceUID:            a.String(dcm.SOPInstanceUID),
		SOPClassUID:               a.String(dcm.SOPClassUID),
		InstanceNumber:            num(dcm.InstanceNumber),
		Rows:                      num(dcm.Rows),
		Columns:                   num(dcm.Columns),
		NumberOfFrames:            num(dcm.NumberOfFrames),
		ImageType:                 a.String(dcm.ImageType),
		PhotometricInterpretation: a.String(dcm.PhotometricInterpretation),
		SpecificCharacterSet:      a.String(dcm.SpecificCharacterSet),
		ViewPosition:              a.String(dcm.ViewPosition),
		ProtocolName:              a.String(dcm.ProtocolName),
		AnatomicRegion:            codes(a.Items(dcm.AnatomicRegionSequence)),
	}
}

// codes are the "SCHEME:VALUE" of each code sequence item that has both, joined by backslashes.
func codes(items []*dcm.DataSet) string {
	var out []string
	for _, it := range items {
		scheme, value := it.String(dcm.CodingSchemeDesignator), it.String(dcm.CodeValue)
		if scheme != "" && value != "" {
			out = append(out, scheme+":"+value)
		}
	}
	return strings.Join(out, `\`)
}

// Describe reads a data set (without file meta) the way Put does and returns
// the index attributes Put would record for it; what depends on the transfer
// (path, size, time, AE titles) is left empty. Routing that must agree with
// the node's (`espnode segment`) starts from it.
func Describe(data io.Reader, transferSyntaxUID string) (Instance, error) {
	attrs, err := dcm.ReadDataSet(data, transferSyntaxUID, dcm.ParseOptions{Keep: scanTags(), SkipValuesOver: maxIndexedValue})
	if err != nil {
		return Instance{}, fmt.Errorf("%w: %w", ErrCannotUnderstand, err)
	}
	inst := instanceFrom(attrs)
	inst.TransferSyntaxUID = transferSyntaxUID
	return inst, nil
}

// teeReader reads r, writes what it read to w, and keeps the two sides'
// errors apart: a failing archive is ours (A700), a failing reader is the
// peer's.
type teeReader struct {
	ctx  context.Context
	r    io.Reader
	w    io.Writer
	n    int64
	rerr error
	werr error
}

func (t *teeReader) Read(p []byte) (int, error) {
	if err := t.ctx.Err(); err != nil {
		t.rerr = err
		return 0, err
	}
	n, err := t.r.Read(p)
	if n > 0 {
		t.n += int64(n)
		if _, werr := t.w.Write(p[:n]); werr != nil {
			t.werr = werr
			return n, werr
		}
	}
	if err != nil && err != io.EOF {
		t.rerr = err
	}
	return n, err
}

func resourceErr(uid string, err error) error {
	return fmt.Errorf("store %s: %w: %w", uid, ErrOutOfResources, err)
}

// Get returns the indexed instance with the given SOP Instance UID, or an
// error wrapping ErrNotFound.
func (s *Store) Get(ctx context.Context, sopInstanceUID string) (Instance, error) {
	if err := dcm.CheckUID(sopInstanceUID); err != nil {
		return Instance{}, fmt.Errorf("store: get %q: %w: %w", sopInstanceUID, ErrInvalidUID, err)
	}
	inst, err := s.index.Get(ctx, sopInstanceUID)
	if err != nil {
		return Instance{}, fmt.Errorf("store: get %s: %w", sopInstanceUID, err)
	}
	return inst, nil
}

// Open returns the Part-10 object of the instance with the given SOP Instance
// UID, and its index record. The caller closes the reader.
func (s *Store) Open(ctx context.Context, sopInstanceUID string) (io.ReadCloser, Instance, error) {
	inst, err := s.Get(ctx, sopInstanceUID)
	if err != nil {
		return nil, Instance{}, err
	}
	rc, err := s.archive.Open(ctx, inst.Path, 0)
	if err != nil {
		return nil, Instance{}, fmt.Errorf("store: open %s: %w", sopInstanceUID, err)
	}
	return rc, inst, nil
}

// OpenDataSet returns the data set of the instance with the given SOP
// Instance UID, without its file meta, and its index record, whose SOP
// class, instance UID and transfer syntax describe the data set: nothing
// needs to parse the meta again. The caller closes the reader.
func (s *Store) OpenDataSet(ctx context.Context, sopInstanceUID string) (io.ReadCloser, Instance, error) {
	return s.OpenDataSetAt(ctx, sopInstanceUID, 0)
}

// OpenDataSetAt is OpenDataSet read from byte offset of the data set on (an
// offset a dcm.Reader reported, such as where pixel data starts), without
// reading what lies before it.
func (s *Store) OpenDataSetAt(ctx context.Context, sopInstanceUID string, offset int64) (io.ReadCloser, Instance, error) {
	if offset < 0 {
		return nil, Instance{}, fmt.Errorf("store: open %s at %d: negative offset", sopInstanceUID, offset)
	}
	inst, err := s.Get(ctx, sopInstanceUID)
	if err != nil {
		return nil, Instance{}, err
	}
	if inst.DataSetOffset > 0 {
		rc, err := s.archive.Open(ctx, inst.Path, inst.DataSetOffset+offset)
		if err != nil {
			return nil, Instance{}, fmt.Errorf("store: open %s: %w", sopInstanceUID, err)
		}
		return rc, inst, nil
	}
	rc, err := s.archive.Open(ctx, inst.Path, 0)
	if err != nil {
		return nil, Instance{}, fmt.Errorf("store: open %s: %w", sopInstanceUID, err)
	}
	// Indexed before the offset was recorded: read past the meta once.
	br := bufio.NewReaderSize(rc, 64<<10)
	if _, err := dcm.ReadFileMeta(br); err != nil {
		rc.Close()
		return nil, Instance{}, fmt.Errorf("store: open %s: %w", sopInstanceUID, err)
	}
	if _, err := br.Discard(int(min(offset, 1<<62))); err != nil {
		rc.Close()
		return nil, Instance{}, fmt.Errorf("store: open %s at %d: %w", sopInstanceUID, offset, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{br, rc}, inst, nil
}

// Remove deletes an instance: its index row first, so that a crash between
// the two steps leaves an object nothing points at rather than a row without
// its object, then the object.
func (s *Store) Remove(ctx context.Context, sopInstanceUID string) error {
	if err := dcm.CheckUID(sopInstanceUID); err != nil {
		return fmt.Errorf("store: remove %q: %w: %w", sopInstanceUID, ErrInvalidUID, err)
	}
	l := &s.uidLocks[stripe(sopInstanceUID)]
	l.Lock()
	defer l.Unlock()
	unlock, err := s.lockInstance(ctx, sopInstanceUID)
	if err != nil {
		return err
	}
	defer unlock()
	inst, err := s.index.Get(ctx, sopInstanceUID)
	if err != nil {
		return fmt.Errorf("store: remove %s: %w", sopInstanceUID, err)
	}
	if err := s.index.Remove(ctx, sopInstanceUID); err != nil {
		return fmt.Errorf("store: remove %s: %w", sopInstanceUID, err)
	}
	if err := s.archive.Remove(ctx, inst.Path); err != nil {
		return fmt.Errorf("store: remove %s: the row is gone, the object stays: %w", sopInstanceUID, err)
	}
	return nil
}

// Counts returns how many patients, studies, series and instances the index
// holds.
func (s *Store) Counts(ctx context.Context) (patients, studies, series, instances int, err error) {
	c, err := s.index.Counts(ctx)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("store: counts: %w", err)
	}
	return c.Patients, c.Studies, c.Series, c.Instances, nil
}
