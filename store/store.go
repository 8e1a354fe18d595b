// Package store is the archive: DICOM instances as Part-10 files under a data
// directory, named by validated UIDs, and an index of them in an embedded SQL
// database. Put returns only once the file and the index row are durable, so
// a caller may then answer C-STORE Success. See docs/STORAGE.md.
package store

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/rs/zerolog"
)

// Errors that callers map to DIMSE statuses. Every error Put returns wraps at
// most one of them; errors of the local file system or the index wrap
// ErrOutOfResources and keep the underlying error (errors.Is(err,
// syscall.ENOSPC) works). An error wrapping none of them came from the Data
// reader or the context: the peer went away, there is no one to answer.
var (
	// ErrInvalidUID: a UID that must name a file or be indexed is not a valid
	// PS3.5 UID.
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
	// ErrOutOfResources: the file system or the index failed, disk full
	// included (A700).
	ErrOutOfResources = errors.New("out of resources")
	// ErrNotFound: no instance with that SOP Instance UID.
	ErrNotFound = errors.New("instance not found")
)

// Duplicate policies: what Put does with a SOP Instance UID already stored.
const (
	// DuplicatesOverwrite replaces the stored file and its index row.
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

// Options configure a Store.
type Options struct {
	// Dir is the data directory; created if missing.
	Dir string
	// Duplicates is the duplicate policy; "" means DuplicatesOverwrite.
	Duplicates string
	// Logger receives the store's log lines.
	Logger zerolog.Logger
	// ImplementationClassUID and ImplementationVersionName go into the file
	// meta of every file the store writes (PS3.10 §7.1).
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
	// instance, after its rows are written: what it writes with tx commits
	// with the instance or not at all (the pipeline creates its job so). Its
	// error fails the Put like any index failure (ErrOutOfResources). It does
	// not run when the instance is kept as a duplicate.
	InTx func(ctx context.Context, tx *sql.Tx, inst Instance) error
	// Overwrite applies the overwrite duplicate policy to this Put whatever
	// the store's policy is: the node's own derived objects (a job's rerun
	// replacing its SEG) replace their earlier version.
	Overwrite bool
}

// Instance is one stored instance as the index records it. Text values are as
// received (padding trimmed, no character set conversion; SpecificCharacterSet
// says how to read them); numbers are 0 when absent.
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

	// Path is the file's path relative to the data directory, with slashes.
	Path string
	// Size is the file's size in bytes, file meta included.
	Size       int64
	ReceivedAt time.Time
	CallingAE  string
	CalledAE   string
	RemoteAddr string

	// Duplicate is set by Put when the policy is keep and the instance was
	// already stored: the returned Instance is the stored one, and Data was
	// not stored.
	Duplicate bool
}

// Store is the archive. Its methods are safe for concurrent use.
type Store struct {
	dir, tmpDir, archiveDir string
	dup                     string
	log                     zerolog.Logger
	implClassUID            string
	implVersion             string
	idx                     index
	db                      *sql.DB
	unlock                  func() error

	// uidLocks serialise Puts of the same SOP Instance UID (striped by
	// hash), so the duplicate decision, the rename and the index update of
	// one UID happen as one step.
	uidLocks [64]sync.Mutex

	// synced holds directories whose entry in their parent this process has
	// fsynced; a directory made by a concurrent Put is not durable until its
	// parent is synced, so presence on disk alone is not enough.
	syncMu sync.Mutex
	synced map[string]struct{}
}

// Layout under Dir.
const (
	tmpName     = "tmp"
	archiveName = "archive"
	indexName   = "index.db"
	lockName    = "LOCK"
)

// maxSyncedDirs bounds the synced-directory memo; forgetting costs only a
// redundant fsync.
const maxSyncedDirs = 100_000

// Open opens (creating if needed) the archive in opts.Dir: it takes the
// directory's lock, removes what a crashed Put left in Dir/tmp, and opens the
// index, creating or migrating its schema.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("store: no data directory")
	}
	s := &Store{
		dir:          opts.Dir,
		tmpDir:       filepath.Join(opts.Dir, tmpName),
		archiveDir:   filepath.Join(opts.Dir, archiveName),
		dup:          opts.Duplicates,
		log:          opts.Logger,
		implClassUID: opts.ImplementationClassUID,
		implVersion:  opts.ImplementationVersionName,
		synced:       make(map[string]struct{}),
	}
	switch s.dup {
	case "":
		s.dup = DuplicatesOverwrite
	case DuplicatesOverwrite, DuplicatesKeep, DuplicatesReject:
	default:
		return nil, fmt.Errorf("store: duplicates policy %q: must be overwrite, keep or reject", s.dup)
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

	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	unlock, err := lockDir(filepath.Join(s.dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", s.dir, err)
	}
	s.unlock = unlock
	fail := func(err error) (*Store, error) {
		s.unlock()
		return nil, fmt.Errorf("store: %w", err)
	}
	for _, d := range []string{s.tmpDir, s.archiveDir} {
		if err := os.Mkdir(d, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
			return fail(err)
		}
	}
	if err := syncDir(s.dir); err != nil {
		return fail(err)
	}
	s.markSynced(s.archiveDir)
	if err := s.cleanTmp(); err != nil {
		return fail(err)
	}
	idx, err := openSQLite(ctx, filepath.Join(s.dir, indexName))
	if err != nil {
		return fail(err)
	}
	s.idx = idx
	s.db = idx.w
	return s, nil
}

// DB returns the pool the index's write transactions come from (one
// connection: SQLite has one writer). A job queue that must share those
// transactions (see PutRequest.InTx) runs on it.
func (s *Store) DB() *sql.DB { return s.db }

// cleanTmp removes leftovers of Puts that did not finish: the lock makes sure
// no other process is writing there.
func (s *Store) cleanTmp() error {
	entries, err := os.ReadDir(s.tmpDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.tmpDir, e.Name())); err != nil {
			return err
		}
	}
	if len(entries) > 0 {
		s.log.Warn().Int("files", len(entries)).Str("dir", s.tmpDir).
			Msg("removed temporary files of unfinished stores (a crash or kill during a transfer)")
	}
	return nil
}

// Close closes the index and releases the data directory.
func (s *Store) Close() error {
	err := s.idx.close()
	if uerr := s.unlock(); err == nil {
		err = uerr
	}
	return err
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
		dcm.Rows, dcm.Columns,
	)
}

// Put stores one instance: it writes a Part-10 file to Dir/tmp while reading
// Data (checking the data set as it goes), fsyncs it, renames it into
// Dir/archive/<study>/<series>/<instance>.dcm, fsyncs the directories, and
// records it in the index, in that order. When Put returns nil the instance
// is durable. On error nothing of it is left on disk.
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
		// Decide early, so a duplicate is not received to disk for nothing;
		// the decision is made again under the UID's lock below.
		if inst, err := s.duplicate(ctx, uid, dup); inst != nil || err != nil {
			return deref(inst), err
		}
	}

	tmp, err := os.CreateTemp(s.tmpDir, "put-*.part")
	if err != nil {
		return Instance{}, resourceErr(uid, err)
	}
	tmpName := tmp.Name()
	inTmp := true
	defer func() {
		if inTmp {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()

	inst, err := s.receive(ctx, req, tmp)
	if err != nil {
		return Instance{}, err
	}
	if err := tmp.Close(); err != nil {
		return Instance{}, resourceErr(uid, err)
	}

	l := &s.uidLocks[stripe(uid)]
	l.Lock()
	defer l.Unlock()
	if dup != DuplicatesOverwrite {
		if dupl, err := s.duplicate(ctx, uid, dup); dupl != nil || err != nil {
			return deref(dupl), err
		}
	}
	old, err := s.idx.get(ctx, uid)
	exists := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Instance{}, resourceErr(uid, err)
	}

	// From here on the work is finished even if ctx is cancelled (the peer
	// left after sending everything): stopping between the rename and the
	// index update would leave a file the index does not know.
	ctx = context.WithoutCancel(ctx)
	seriesDir := filepath.Join(s.archiveDir, inst.StudyInstanceUID, inst.SeriesInstanceUID)
	final := filepath.Join(seriesDir, inst.SOPInstanceUID+".dcm")
	inst.Path = filepath.ToSlash(filepath.Join(archiveName, inst.StudyInstanceUID, inst.SeriesInstanceUID, inst.SOPInstanceUID+".dcm"))
	if err := s.mkdirDurable(filepath.Dir(seriesDir)); err != nil {
		return Instance{}, resourceErr(uid, err)
	}
	if err := s.mkdirDurable(seriesDir); err != nil {
		return Instance{}, resourceErr(uid, err)
	}
	if err := os.Rename(tmpName, final); err != nil {
		return Instance{}, resourceErr(uid, err)
	}
	inTmp = false
	samePath := exists && old.Path == inst.Path
	if err := syncDir(seriesDir); err != nil {
		if !samePath {
			os.Remove(final)
		}
		return Instance{}, resourceErr(uid, err)
	}
	var inTx func(*sql.Tx) error
	if req.InTx != nil {
		inTx = func(tx *sql.Tx) error { return req.InTx(ctx, tx, inst) }
	}
	if err := s.idx.put(ctx, inst, inTx); err != nil {
		// The old row, if any, still points at its file: remove the new
		// file unless it replaced that very file.
		if !samePath {
			os.Remove(final)
		}
		return Instance{}, resourceErr(uid, err)
	}
	if exists {
		ev := s.log.Info().Str("sop_instance_uid", uid).Str("calling_ae", req.CallingAE).
			Time("previously_received", old.ReceivedAt)
		if !samePath {
			// The instance moved to another series: the old file goes.
			if err := os.Remove(filepath.Join(s.dir, filepath.FromSlash(old.Path))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn().Err(err).Str("path", old.Path).Msg("cannot remove the replaced file")
			}
			ev = ev.Str("old_path", old.Path)
		}
		ev.Msg("duplicate SOP instance overwritten")
	}
	return inst, nil
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
	inst, err := s.idx.get(ctx, uid)
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

// receive writes file meta and the data set to f, scanning the data set on
// the way, fsyncs f, and returns the instance to index (Path not yet set).
func (s *Store) receive(ctx context.Context, req PutRequest, f *os.File) (Instance, error) {
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
	w := bufio.NewWriterSize(f, 64<<10)
	if _, err := w.Write(mb.Bytes()); err != nil {
		return Instance{}, resourceErr(uid, err)
	}
	tee := &teeReader{ctx: ctx, r: req.Data, w: w}
	attrs, err := dcm.ReadDataSet(tee, req.TransferSyntaxUID, dcm.ParseOptions{Keep: scanTags(), SkipValuesOver: maxIndexedValue})
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
	if err := f.Sync(); err != nil {
		return Instance{}, resourceErr(uid, err)
	}
	inst.TransferSyntaxUID = req.TransferSyntaxUID
	inst.Size = int64(mb.Len()) + tee.n
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
		PatientID:                 a.String(dcm.PatientID),
		IssuerOfPatientID:         a.String(dcm.IssuerOfPatientID),
		PatientName:               a.String(dcm.PatientName),
		PatientBirthDate:          a.String(dcm.PatientBirthDate),
		PatientSex:                a.String(dcm.PatientSex),
		StudyInstanceUID:          a.String(dcm.StudyInstanceUID),
		StudyDate:                 a.String(dcm.StudyDate),
		StudyTime:                 a.String(dcm.StudyTime),
		AccessionNumber:           a.String(dcm.AccessionNumber),
		StudyID:                   a.String(dcm.StudyID),
		StudyDescription:          a.String(dcm.StudyDescription),
		ReferringPhysicianName:    a.String(dcm.ReferringPhysicianName),
		SeriesInstanceUID:         a.String(dcm.SeriesInstanceUID),
		Modality:                  a.String(dcm.Modality),
		SeriesNumber:              num(dcm.SeriesNumber),
		SeriesDescription:         a.String(dcm.SeriesDescription),
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
	}
}

// teeReader reads r, writes what it read to w, and keeps the two sides'
// errors apart: a failing disk is ours (A700), a failing reader is the peer's.
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
	inst, err := s.idx.get(ctx, sopInstanceUID)
	if err != nil {
		return Instance{}, fmt.Errorf("store: get %s: %w", sopInstanceUID, err)
	}
	return inst, nil
}

// Open returns the Part-10 file of the instance with the given SOP Instance
// UID, and its index record. The caller closes the file.
func (s *Store) Open(ctx context.Context, sopInstanceUID string) (io.ReadCloser, Instance, error) {
	inst, err := s.Get(ctx, sopInstanceUID)
	if err != nil {
		return nil, Instance{}, err
	}
	f, err := os.Open(filepath.Join(s.dir, filepath.FromSlash(inst.Path)))
	if err != nil {
		return nil, Instance{}, fmt.Errorf("store: open %s: %w", sopInstanceUID, err)
	}
	return f, inst, nil
}

// Counts returns how many patients, studies, series and instances the index
// holds.
func (s *Store) Counts(ctx context.Context) (patients, studies, series, instances int, err error) {
	c, err := s.idx.counts(ctx)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("store: counts: %w", err)
	}
	return c.patients, c.studies, c.series, c.instances, nil
}

// mkdirDurable creates dir if needed and makes sure its entry in its parent
// has been fsynced by this process.
func (s *Store) mkdirDurable(dir string) error {
	s.syncMu.Lock()
	_, ok := s.synced[dir]
	s.syncMu.Unlock()
	if ok {
		return nil
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	s.markSynced(dir)
	return nil
}

func (s *Store) markSynced(dir string) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if len(s.synced) >= maxSyncedDirs {
		clear(s.synced)
	}
	s.synced[dir] = struct{}{}
}

// syncDir fsyncs a directory, making the entries created in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
