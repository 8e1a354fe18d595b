// Package sqlite is the embedded engine of the index and the job queue: one SQLite database
// (pure Go, modernc.org/sqlite) holds the instance rows, River's tables (riversqlite) and the
// pipeline's series table, so that a job commits in the same transaction as the row it is
// about. It implements store.Index and store.Queue. All of the node's SQL is in this package.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/espnode/espnode/store"
)

// migrations()[i] takes the schema from version i to i+1. Append only: a
// released migration never changes.
func migrations() []string {
	return []string{`
CREATE TABLE patient (
	pk           INTEGER PRIMARY KEY,
	patient_id   TEXT NOT NULL,
	issuer       TEXT NOT NULL DEFAULT '',
	patient_name TEXT NOT NULL DEFAULT '',
	birth_date   TEXT NOT NULL DEFAULT '',
	sex          TEXT NOT NULL DEFAULT '',
	UNIQUE (patient_id, issuer)
);
CREATE INDEX patient_name ON patient (patient_name);

CREATE TABLE study (
	pk                       INTEGER PRIMARY KEY,
	patient_pk               INTEGER NOT NULL REFERENCES patient (pk),
	study_uid                TEXT NOT NULL UNIQUE,
	study_date               TEXT NOT NULL DEFAULT '',
	study_time               TEXT NOT NULL DEFAULT '',
	accession_number         TEXT NOT NULL DEFAULT '',
	study_id                 TEXT NOT NULL DEFAULT '',
	study_description        TEXT NOT NULL DEFAULT '',
	referring_physician_name TEXT NOT NULL DEFAULT '',
	updated_at               TEXT NOT NULL
);
CREATE INDEX study_patient ON study (patient_pk);
CREATE INDEX study_date ON study (study_date);
CREATE INDEX study_accession ON study (accession_number);

CREATE TABLE series (
	pk                 INTEGER PRIMARY KEY,
	study_pk           INTEGER NOT NULL REFERENCES study (pk),
	series_uid         TEXT NOT NULL UNIQUE,
	modality           TEXT NOT NULL DEFAULT '',
	series_number      INTEGER,
	series_description TEXT NOT NULL DEFAULT '',
	series_date        TEXT NOT NULL DEFAULT '',
	series_time        TEXT NOT NULL DEFAULT '',
	body_part_examined TEXT NOT NULL DEFAULT '',
	updated_at         TEXT NOT NULL
);
CREATE INDEX series_study ON series (study_pk);
CREATE INDEX series_modality ON series (modality);

CREATE TABLE instance (
	pk                         INTEGER PRIMARY KEY,
	series_pk                  INTEGER NOT NULL REFERENCES series (pk),
	sop_instance_uid           TEXT NOT NULL UNIQUE,
	sop_class_uid              TEXT NOT NULL,
	instance_number            INTEGER,
	num_rows                   INTEGER,
	num_columns                INTEGER,
	number_of_frames           INTEGER,
	image_type                 TEXT NOT NULL DEFAULT '',
	photometric_interpretation TEXT NOT NULL DEFAULT '',
	specific_character_set     TEXT NOT NULL DEFAULT '',
	transfer_syntax_uid        TEXT NOT NULL,
	path                       TEXT NOT NULL,
	size                       INTEGER NOT NULL,
	received_at                TEXT NOT NULL,
	calling_ae                 TEXT NOT NULL DEFAULT '',
	called_ae                  TEXT NOT NULL DEFAULT '',
	remote_addr                TEXT NOT NULL DEFAULT ''
);
CREATE INDEX instance_series ON instance (series_pk);
CREATE INDEX instance_sop_class ON instance (sop_class_uid);
CREATE INDEX instance_received ON instance (received_at);
`, `
ALTER TABLE instance ADD COLUMN dataset_offset INTEGER NOT NULL DEFAULT 0;
-- The pipeline's series table (series mode): which instances of a series arrived, and when. It
-- was made by the pipeline itself before it moved here, hence IF NOT EXISTS.
CREATE TABLE IF NOT EXISTS pipeline_series_instance (
	series_uid       TEXT NOT NULL,
	sop_instance_uid TEXT NOT NULL,
	instance_number  INTEGER NOT NULL,
	received_at      BIGINT NOT NULL,
	PRIMARY KEY (series_uid, sop_instance_uid)
);
`, `
-- Text values are UTF-8 from now on (store.Instance); recodeToUTF8 decodes the older rows, which
-- it finds by their instances' character sets.
CREATE INDEX instance_charset ON instance (specific_character_set);
`, `
-- No query reads instances by the time they arrived, and the index cost a page write in every
-- Put's commit.
DROP INDEX IF EXISTS instance_received;
`, `
-- Only the UTF-8 migration (version 3) read instances by their character set, in its own
-- transaction; every Put since has paid a page write for the index.
DROP INDEX IF EXISTS instance_charset;
`}
}

// Engine keeps two pools: one connection for writes, since SQLite has one writer at a time and
// queueing in Go is cheaper than spinning on SQLITE_BUSY, and several read-only ones, which WAL
// lets run beside it. The job queue runs on the writer, in the index's transactions.
type Engine struct {
	*Queue
	w, r *sql.DB
	// Statements of the hot path, prepared once: parsing SQL on every call was a quarter of the
	// CPU time of a small C-STORE (profiled with perf on 1,000 objects).
	putStmts stmts
	getStmt  *sql.Stmt
	rows     *rowCache
	// puts feed the committer goroutine (commit.go); quit stops it, committerDone says it has.
	puts          chan *putRequest
	quit          chan struct{}
	committerDone chan struct{}
	stop          sync.Once
	// batches and batchedPuts count the committer's transactions and the Puts in them.
	batches, batchedPuts atomic.Int64
}

var (
	_ store.Index = (*Engine)(nil)
	_ store.Queue = (*Engine)(nil)
)

// stmts are the statements of an index put, prepared on the writer.
type stmts struct {
	studyPatient, instanceSeries                             *sql.Stmt
	pkPatient, pkStudy, pkSeries                             *sql.Stmt
	upsertPatient, upsertStudy, upsertSeries, upsertInstance *sql.Stmt
}

func prepare(ctx context.Context, db *sql.DB, queries ...string) ([]*sql.Stmt, error) {
	out := make([]*sql.Stmt, 0, len(queries))
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			for _, p := range out {
				p.Close()
			}
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

const (
	pkPatient = `SELECT ` + patientRowColumns + ` FROM patient WHERE patient_id = ? AND issuer = ?`
	pkStudy   = `SELECT ` + studyRowColumns + ` FROM study WHERE study_uid = ?`
	pkSeries  = `SELECT ` + seriesRowColumns + ` FROM series WHERE series_uid = ?`
	// What the upserts return, and rows.go caches: the row as stored.
	patientRowColumns    = `pk, patient_name, birth_date, sex`
	studyRowColumns      = `pk, patient_pk, study_date, study_time, accession_number, study_id, study_description, referring_physician_name`
	seriesRowColumns     = `pk, study_pk, modality, series_number, series_description, series_date, series_time, body_part_examined`
	selectStudyPatient   = `SELECT patient_pk FROM study WHERE study_uid = ?`
	selectInstanceSeries = `SELECT series_pk, path, received_at FROM instance WHERE sop_instance_uid = ?`
)

// Open opens (creating if needed) the database at path and brings its schema, River's tables
// included, to this program's version. The caller makes sure no other process works the same
// queue (RecoverJobs relies on it): datadir opens it under the data directory's lock.
func Open(ctx context.Context, path string) (*Engine, error) {
	// synchronous=FULL: a commit is on disk when it returns, which is what
	// lets Put's caller answer Success. busy_timeout covers the moments WAL
	// checkpoints take locks.
	w, err := sql.Open("sqlite", fileURI(path)+pragmas+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("index %s: %w", path, err)
	}
	if err := migrateQueue(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("index %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", fileURI(path)+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("index %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	x := &Engine{Queue: &Queue{db: w}, w: w, r: r, rows: newRowCache()}
	ws, err := prepare(ctx, w, selectStudyPatient, selectInstanceSeries, upsertPatient, upsertStudy, upsertSeries, upsertInstance,
		pkPatient, pkStudy, pkSeries)
	if err != nil {
		x.Close()
		return nil, fmt.Errorf("index %s: prepare: %w", path, err)
	}
	x.putStmts = stmts{studyPatient: ws[0], instanceSeries: ws[1], upsertPatient: ws[2], upsertStudy: ws[3], upsertSeries: ws[4],
		upsertInstance: ws[5], pkPatient: ws[6], pkStudy: ws[7], pkSeries: ws[8]}
	rs, err := prepare(ctx, r, selectInstance)
	if err != nil {
		x.Close()
		return nil, fmt.Errorf("index %s: prepare: %w", path, err)
	}
	x.getStmt = rs[0]
	x.puts, x.quit, x.committerDone = make(chan *putRequest), make(chan struct{}), make(chan struct{})
	go x.committer()
	return x, nil
}

const pragmas = "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)"

// fileURI names path as a file: URI, escaped, so that a data directory whose name holds ?, #
// or % still names the right file.
func fileURI(path string) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(path))
}

// OpenQueue opens the job queue of an existing database for another process than the one
// serving it, such as `espnode jobs`: WAL lets it read and write beside the server, whose
// workers see its changes at their next poll. The caller closes it.
func OpenQueue(ctx context.Context, path string) (*Queue, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	db, err := sql.Open("sqlite", fileURI(path)+pragmas+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	var exists int
	err = db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'river_job'`).Scan(&exists)
	if err == nil && exists == 0 {
		err = errors.New("this data directory has no job queue yet (espnode serve creates it)")
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("job queue: %w", err)
	}
	return &Queue{db: db, owned: true}, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return err
	}
	m := migrations()
	if v > len(m) {
		return fmt.Errorf("schema version %d is newer than this program knows (%d): use a newer espnode", v, len(m))
	}
	for ; v < len(m); v++ {
		if _, err := tx.ExecContext(ctx, m[v]); err != nil {
			return fmt.Errorf("migration to schema version %d: %w", v+1, err)
		}
		if step := goMigrations()[v+1]; step != nil {
			if err := step(ctx, tx); err != nil {
				return fmt.Errorf("migration to schema version %d: %w", v+1, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM schema_version`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, v+1); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Close stops the committer, then closes the statements and both pools.
func (x *Engine) Close() error {
	if x.quit != nil {
		x.stop.Do(func() { close(x.quit) })
		<-x.committerDone
	}
	var errs []error
	for _, st := range []*sql.Stmt{x.getStmt, x.putStmts.studyPatient, x.putStmts.instanceSeries, x.putStmts.upsertPatient, x.putStmts.upsertStudy, x.putStmts.upsertSeries, x.putStmts.upsertInstance,
		x.putStmts.pkPatient, x.putStmts.pkStudy, x.putStmts.pkSeries} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(append(errs, x.r.Close(), x.w.Close())...)
}

const selectInstance = `
SELECT p.patient_id, p.issuer, p.patient_name, p.birth_date, p.sex,
	st.study_uid, st.study_date, st.study_time, st.accession_number, st.study_id,
	st.study_description, st.referring_physician_name,
	se.series_uid, se.modality, COALESCE(se.series_number, 0), se.series_description,
	se.series_date, se.series_time, se.body_part_examined,
	i.sop_instance_uid, i.sop_class_uid, COALESCE(i.instance_number, 0), COALESCE(i.num_rows, 0),
	COALESCE(i.num_columns, 0), COALESCE(i.number_of_frames, 0), i.image_type,
	i.photometric_interpretation, i.specific_character_set, i.transfer_syntax_uid,
	i.path, i.size, i.dataset_offset, i.received_at, i.calling_ae, i.called_ae, i.remote_addr
FROM instance i
JOIN series se ON se.pk = i.series_pk
JOIN study st ON st.pk = se.study_pk
JOIN patient p ON p.pk = st.patient_pk
WHERE i.sop_instance_uid = ?`

// Get implements store.Index.
func (x *Engine) Get(ctx context.Context, uid string) (store.Instance, error) {
	var (
		in       store.Instance
		received string
	)
	err := x.getStmt.QueryRowContext(ctx, uid).Scan(
		&in.PatientID, &in.IssuerOfPatientID, &in.PatientName, &in.PatientBirthDate, &in.PatientSex,
		&in.StudyInstanceUID, &in.StudyDate, &in.StudyTime, &in.AccessionNumber, &in.StudyID,
		&in.StudyDescription, &in.ReferringPhysicianName,
		&in.SeriesInstanceUID, &in.Modality, &in.SeriesNumber, &in.SeriesDescription,
		&in.SeriesDate, &in.SeriesTime, &in.BodyPartExamined,
		&in.SOPInstanceUID, &in.SOPClassUID, &in.InstanceNumber, &in.Rows,
		&in.Columns, &in.NumberOfFrames, &in.ImageType,
		&in.PhotometricInterpretation, &in.SpecificCharacterSet, &in.TransferSyntaxUID,
		&in.Path, &in.Size, &in.DataSetOffset, &received, &in.CallingAE, &in.CalledAE, &in.RemoteAddr)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Instance{}, store.ErrNotFound
	}
	if err != nil {
		return store.Instance{}, fmt.Errorf("index: %w", err)
	}
	in.ReceivedAt, err = time.Parse(time.RFC3339Nano, received)
	if err != nil {
		return store.Instance{}, fmt.Errorf("index: received_at %q: %w", received, err)
	}
	return in, nil
}

// nullIfZero stores an absent number (0 in Instance) as NULL, so a query can
// tell "no Instance Number" from any value.
func nullIfZero(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

// Attribute updates keep a stored value when the new instance has none: the
// instances of a study do not all repeat every study attribute. A row that
// would not change is not written (the WHERE of each upsert), which keeps the
// commit of the next instance of a series to the pages that really change; the
// upsert then returns no row and the key is read instead (pkPatient, ...).
const (
	upsertPatient = `
INSERT INTO patient (patient_id, issuer, patient_name, birth_date, sex) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (patient_id, issuer) DO UPDATE SET
	patient_name = COALESCE(NULLIF(excluded.patient_name, ''), patient.patient_name),
	birth_date   = COALESCE(NULLIF(excluded.birth_date, ''), patient.birth_date),
	sex          = COALESCE(NULLIF(excluded.sex, ''), patient.sex)
WHERE (patient.patient_name, patient.birth_date, patient.sex) IS NOT
	(COALESCE(NULLIF(excluded.patient_name, ''), patient.patient_name), COALESCE(NULLIF(excluded.birth_date, ''), patient.birth_date),
	 COALESCE(NULLIF(excluded.sex, ''), patient.sex))
RETURNING ` + patientRowColumns
	upsertStudy = `
INSERT INTO study (study_uid, patient_pk, study_date, study_time, accession_number, study_id,
	study_description, referring_physician_name, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (study_uid) DO UPDATE SET
	patient_pk               = excluded.patient_pk,
	study_date               = COALESCE(NULLIF(excluded.study_date, ''), study.study_date),
	study_time               = COALESCE(NULLIF(excluded.study_time, ''), study.study_time),
	accession_number         = COALESCE(NULLIF(excluded.accession_number, ''), study.accession_number),
	study_id                 = COALESCE(NULLIF(excluded.study_id, ''), study.study_id),
	study_description        = COALESCE(NULLIF(excluded.study_description, ''), study.study_description),
	referring_physician_name = COALESCE(NULLIF(excluded.referring_physician_name, ''), study.referring_physician_name),
	updated_at               = excluded.updated_at
WHERE (study.patient_pk, study.study_date, study.study_time, study.accession_number, study.study_id, study.study_description,
	study.referring_physician_name) IS NOT
	(excluded.patient_pk, COALESCE(NULLIF(excluded.study_date, ''), study.study_date), COALESCE(NULLIF(excluded.study_time, ''), study.study_time),
	 COALESCE(NULLIF(excluded.accession_number, ''), study.accession_number), COALESCE(NULLIF(excluded.study_id, ''), study.study_id),
	 COALESCE(NULLIF(excluded.study_description, ''), study.study_description),
	 COALESCE(NULLIF(excluded.referring_physician_name, ''), study.referring_physician_name))
RETURNING ` + studyRowColumns
	upsertSeries = `
INSERT INTO series (series_uid, study_pk, modality, series_number, series_description,
	series_date, series_time, body_part_examined, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (series_uid) DO UPDATE SET
	study_pk           = excluded.study_pk,
	modality           = COALESCE(NULLIF(excluded.modality, ''), series.modality),
	series_number      = COALESCE(excluded.series_number, series.series_number),
	series_description = COALESCE(NULLIF(excluded.series_description, ''), series.series_description),
	series_date        = COALESCE(NULLIF(excluded.series_date, ''), series.series_date),
	series_time        = COALESCE(NULLIF(excluded.series_time, ''), series.series_time),
	body_part_examined = COALESCE(NULLIF(excluded.body_part_examined, ''), series.body_part_examined),
	updated_at         = excluded.updated_at
WHERE (series.study_pk, series.modality, series.series_number, series.series_description, series.series_date, series.series_time,
	series.body_part_examined) IS NOT
	(excluded.study_pk, COALESCE(NULLIF(excluded.modality, ''), series.modality), COALESCE(excluded.series_number, series.series_number),
	 COALESCE(NULLIF(excluded.series_description, ''), series.series_description), COALESCE(NULLIF(excluded.series_date, ''), series.series_date),
	 COALESCE(NULLIF(excluded.series_time, ''), series.series_time), COALESCE(NULLIF(excluded.body_part_examined, ''), series.body_part_examined))
RETURNING ` + seriesRowColumns
	upsertInstance = `
INSERT INTO instance (sop_instance_uid, series_pk, sop_class_uid, instance_number, num_rows, num_columns,
	number_of_frames, image_type, photometric_interpretation, specific_character_set, transfer_syntax_uid,
	path, size, dataset_offset, received_at, calling_ae, called_ae, remote_addr)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (sop_instance_uid) DO UPDATE SET
	series_pk                  = excluded.series_pk,
	sop_class_uid              = excluded.sop_class_uid,
	instance_number            = excluded.instance_number,
	num_rows                   = excluded.num_rows,
	num_columns                = excluded.num_columns,
	number_of_frames           = excluded.number_of_frames,
	image_type                 = excluded.image_type,
	photometric_interpretation = excluded.photometric_interpretation,
	specific_character_set     = excluded.specific_character_set,
	transfer_syntax_uid        = excluded.transfer_syntax_uid,
	path                       = excluded.path,
	size                       = excluded.size,
	dataset_offset             = excluded.dataset_offset,
	received_at                = excluded.received_at,
	calling_ae                 = excluded.calling_ae,
	called_ae                  = excluded.called_ae,
	remote_addr                = excluded.remote_addr`

	// A replaced instance may leave its old series, study or patient empty.
	deleteEmptySeries  = `DELETE FROM series WHERE pk = ? AND NOT EXISTS (SELECT 1 FROM instance WHERE series_pk = ?) RETURNING study_pk`
	deleteEmptyStudy   = `DELETE FROM study WHERE pk = ? AND NOT EXISTS (SELECT 1 FROM series WHERE study_pk = ?) RETURNING patient_pk`
	deleteEmptyPatient = `DELETE FROM patient WHERE pk = ? AND NOT EXISTS (SELECT 1 FROM study WHERE patient_pk = ?)`
)

// Put implements store.Index; inTx gets the queue's view of the transaction. The committer
// (commit.go) writes it, with the Puts of other goroutines waiting at the same time, in one
// transaction, durable when Put returns.
func (x *Engine) Put(ctx context.Context, in store.Instance, inTx func(store.Tx) error) (store.Replaced, error) {
	r := &putRequest{ctx: ctx, inst: in, inTx: inTx, done: make(chan error, 1)}
	select {
	case x.puts <- r:
	case <-x.quit:
		return store.Replaced{}, errors.New("index: closed")
	case <-ctx.Done():
		return store.Replaced{}, fmt.Errorf("index: %w", ctx.Err())
	}
	// Once handed over, the Put is seen through: its rows may be in a commit already.
	if err := <-r.done; err != nil {
		return store.Replaced{}, err
	}
	return r.prev, nil
}

// deleteEmpty removes a series left without instances, then its study and
// patient if they are left empty in turn.
func deleteEmpty(ctx context.Context, tx *sql.Tx, seriesPK int64) error {
	var studyPK, patientPK int64
	err := tx.QueryRowContext(ctx, deleteEmptySeries, seriesPK, seriesPK).Scan(&studyPK)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	err = tx.QueryRowContext(ctx, deleteEmptyStudy, studyPK, studyPK).Scan(&patientPK)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, deleteEmptyPatient, patientPK, patientPK)
	return err
}

// Counts implements store.Index.
func (x *Engine) Counts(ctx context.Context) (store.Counts, error) {
	var c store.Counts
	err := x.r.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM patient), (SELECT COUNT(*) FROM study),
		(SELECT COUNT(*) FROM series), (SELECT COUNT(*) FROM instance)`).
		Scan(&c.Patients, &c.Studies, &c.Series, &c.Instances)
	if err != nil {
		return store.Counts{}, fmt.Errorf("index: %w", err)
	}
	return c, nil
}

// Remove implements store.Index.
func (x *Engine) Remove(ctx context.Context, uid string) error {
	tx, err := x.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer tx.Rollback()
	var seriesPK int64
	err = tx.QueryRowContext(ctx, `DELETE FROM instance WHERE sop_instance_uid = ? RETURNING series_pk`, uid).Scan(&seriesPK)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if err := deleteEmpty(ctx, tx, seriesPK); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	// Inside the transaction, which holds the writer: no batch can be between its statements
	// and its commit now.
	x.rows.invalidate()
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index: commit: %w", err)
	}
	return nil
}
