// Package postgres is the shared engine of the index and the job queue: one PostgreSQL database
// (pgx v5) holds the instance rows, River's tables (riverpgxv5) and the pipeline's series table,
// so that a job commits in the same transaction as the row it is about, and several nodes can
// share them. It implements store.Index and store.Queue with the promises docs/DESIGN.md
// ("Seams") states; docs/SCALING.md says how a cluster relies on them.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/rs/zerolog"

	"github.com/espnode/espnode/store"
)

// migrations()[i] takes the schema from version i to i+1. Append only: a released migration
// never changes. The tables are store/sqlite's, in PostgreSQL's types.
func migrations() []string {
	return []string{`
CREATE TABLE patient (
	pk           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	patient_id   TEXT NOT NULL,
	issuer       TEXT NOT NULL DEFAULT '',
	patient_name TEXT NOT NULL DEFAULT '',
	birth_date   TEXT NOT NULL DEFAULT '',
	sex          TEXT NOT NULL DEFAULT '',
	UNIQUE (patient_id, issuer)
);
CREATE INDEX patient_name ON patient (patient_name);

CREATE TABLE study (
	pk                       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	patient_pk               BIGINT NOT NULL REFERENCES patient (pk),
	study_uid                TEXT NOT NULL UNIQUE,
	study_date               TEXT NOT NULL DEFAULT '',
	study_time               TEXT NOT NULL DEFAULT '',
	accession_number         TEXT NOT NULL DEFAULT '',
	study_id                 TEXT NOT NULL DEFAULT '',
	study_description        TEXT NOT NULL DEFAULT '',
	referring_physician_name TEXT NOT NULL DEFAULT '',
	updated_at               TIMESTAMPTZ NOT NULL
);
CREATE INDEX study_patient ON study (patient_pk);
CREATE INDEX study_date ON study (study_date);
CREATE INDEX study_accession ON study (accession_number);

CREATE TABLE series (
	pk                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	study_pk           BIGINT NOT NULL REFERENCES study (pk),
	series_uid         TEXT NOT NULL UNIQUE,
	modality           TEXT NOT NULL DEFAULT '',
	series_number      INTEGER,
	series_description TEXT NOT NULL DEFAULT '',
	series_date        TEXT NOT NULL DEFAULT '',
	series_time        TEXT NOT NULL DEFAULT '',
	body_part_examined TEXT NOT NULL DEFAULT '',
	updated_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX series_study ON series (study_pk);
CREATE INDEX series_modality ON series (modality);

CREATE TABLE instance (
	pk                         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	series_pk                  BIGINT NOT NULL REFERENCES series (pk),
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
	size                       BIGINT NOT NULL,
	dataset_offset             BIGINT NOT NULL DEFAULT 0,
	received_at                TIMESTAMPTZ NOT NULL,
	calling_ae                 TEXT NOT NULL DEFAULT '',
	called_ae                  TEXT NOT NULL DEFAULT '',
	remote_addr                TEXT NOT NULL DEFAULT ''
);
CREATE INDEX instance_series ON instance (series_pk);
CREATE INDEX instance_sop_class ON instance (sop_class_uid);

-- The pipeline's series table (series mode): which instances of a series arrived, at whichever
-- node, and when (Unix nanoseconds, as store/sqlite keeps them).
CREATE TABLE pipeline_series_instance (
	series_uid       TEXT NOT NULL,
	sop_instance_uid TEXT NOT NULL,
	instance_number  INTEGER NOT NULL,
	received_at      BIGINT NOT NULL,
	PRIMARY KEY (series_uid, sop_instance_uid)
);
`}
}

// Advisory lock keys. migrationLock is the one-bigint form; the per-instance locks of Put use
// the two-int form, whose key space PostgreSQL keeps apart from the bigint one.
const (
	migrationLock int64 = 0x6573706e6f6465 // "espnode"
	instanceLocks int32 = 0x65737031
	// objectLocks are the session locks of LockInstance, held across the Put that takes the
	// instance's transaction lock: a key space of their own, so the two never wait on each other.
	objectLocks int32 = 0x65737032
)

// DB is the index and the job queue on one PostgreSQL database. Its methods are safe for
// concurrent use, by any number of processes on the same database.
type DB struct {
	*Queue
	pool *pgxpool.Pool
	// locks holds the connections of LockInstance's session locks, apart from pool: a Put holds
	// a lock while it needs a connection of pool, so sharing one pool could starve every holder.
	locks *pgxpool.Pool
	log   zerolog.Logger
}

var (
	_ store.Index          = (*DB)(nil)
	_ store.InstanceLocker = (*DB)(nil)
)

// Options tune Open; the zero value is right for a node.
type Options struct {
	// NoMigrate opens a database another process has migrated (`espnode jobs`), and fails when
	// it has not.
	NoMigrate bool
}

// Open connects to the database at url (postgres:// or postgresql://, with pgx's parameters,
// pool_max_conns among them) and brings its schema, River's tables included, to this program's
// version. Several nodes may open the same database at once: the migrations run one node at a
// time under an advisory lock, and a node that comes second finds nothing left to do.
func Open(ctx context.Context, url string, log zerolog.Logger, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may quote the URL, password included: say only what is wrong.
		return nil, fmt.Errorf("index: the PostgreSQL URL does not parse (postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=...)")
	}
	if !strings.Contains(url, "pool_max_conns=") {
		// pgxpool's default, max(4, cores), is too few: River's listener holds one for good, its
		// producer and completer take others, and every association's Put needs one.
		cfg.MaxConns = int32(max(16, 4*runtime.GOMAXPROCS(0)))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", server(cfg), err)
	}
	lockCfg := cfg.Copy()
	// A lock connection is held for one object's commit and its row's write; beyond this many at
	// once, further Puts of this node wait for one.
	lockCfg.MaxConns = int32(max(8, 2*runtime.GOMAXPROCS(0)))
	locks, err := pgxpool.NewWithConfig(ctx, lockCfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("index %s: %w", server(cfg), err)
	}
	db := &DB{Queue: &Queue{pool: pool}, pool: pool, locks: locks, log: log}
	if err := db.check(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("index %s: %w", server(cfg), err)
	}
	if opts.NoMigrate {
		var exists bool
		err := pool.QueryRow(ctx, `SELECT to_regclass('river_job') IS NOT NULL AND to_regclass('schema_version') IS NOT NULL`).Scan(&exists)
		if err == nil && !exists {
			err = errors.New("this database has no job queue yet (espnode serve creates it)")
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("index %s: %w", server(cfg), err)
		}
		return db, nil
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("index %s: %w", server(cfg), err)
	}
	return db, nil
}

// server names the server and database of cfg without its credentials.
func server(cfg *pgxpool.Config) string {
	return fmt.Sprintf("postgres://%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
}

// check makes sure the server can hold what the index stores: store.Instance's text is UTF-8.
func (db *DB) check(ctx context.Context) error {
	var enc string
	if err := db.pool.QueryRow(ctx, `SHOW server_encoding`).Scan(&enc); err != nil {
		return err
	}
	if enc != "UTF8" {
		return fmt.Errorf("the database's encoding is %s; the index holds UTF-8 text: create it with ENCODING 'UTF8'", enc)
	}
	return nil
}

// migrate runs River's migrations and the index's under one advisory lock, held by one
// connection of the pool: a node that crashes in the middle releases it with its session.
func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	defer func() {
		// A failed unlock ends the session, which releases the lock too.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock); err != nil {
			conn.Conn().Close(context.Background())
		}
	}()
	m, err := rivermigrate.New(riverpgxv5.New(db.pool), nil)
	if err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("job queue: migrate: %w", err)
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
			return err
		}
		var v int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
			return err
		}
		ms := migrations()
		if v > len(ms) {
			return fmt.Errorf("schema version %d is newer than this program knows (%d): use a newer espnode", v, len(ms))
		}
		if v == len(ms) {
			return nil
		}
		for ; v < len(ms); v++ {
			if _, err := tx.Exec(ctx, ms[v]); err != nil {
				return fmt.Errorf("migration to schema version %d: %w", v+1, err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM schema_version`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, v)
		return err
	})
}

// Close closes the pool.
func (db *DB) Close() error {
	db.pool.Close()
	db.locks.Close()
	return nil
}

// LockInstance implements store.InstanceLocker with a session advisory lock on a connection of
// its own. A connection the server lost releases its locks with it; one whose unlock failed is
// closed rather than returned to the pool still holding the lock.
func (db *DB) LockInstance(ctx context.Context, uid string) (func(), error) {
	conn, err := db.locks.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, objectLocks, uid); err != nil {
		conn.Release()
		return nil, err
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, objectLocks, uid); err != nil {
			db.log.Warn().Err(err).Str("sop_instance_uid", uid).Msg("instance lock: unlock failed, its connection closed")
			_ = conn.Conn().Close(uctx)
		}
		conn.Release()
	}, nil
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
WHERE i.sop_instance_uid = $1`

// Get implements store.Index.
func (db *DB) Get(ctx context.Context, uid string) (store.Instance, error) {
	var in store.Instance
	err := db.pool.QueryRow(ctx, selectInstance, uid).Scan(
		&in.PatientID, &in.IssuerOfPatientID, &in.PatientName, &in.PatientBirthDate, &in.PatientSex,
		&in.StudyInstanceUID, &in.StudyDate, &in.StudyTime, &in.AccessionNumber, &in.StudyID,
		&in.StudyDescription, &in.ReferringPhysicianName,
		&in.SeriesInstanceUID, &in.Modality, &in.SeriesNumber, &in.SeriesDescription,
		&in.SeriesDate, &in.SeriesTime, &in.BodyPartExamined,
		&in.SOPInstanceUID, &in.SOPClassUID, &in.InstanceNumber, &in.Rows,
		&in.Columns, &in.NumberOfFrames, &in.ImageType,
		&in.PhotometricInterpretation, &in.SpecificCharacterSet, &in.TransferSyntaxUID,
		&in.Path, &in.Size, &in.DataSetOffset, &in.ReceivedAt, &in.CallingAE, &in.CalledAE, &in.RemoteAddr)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Instance{}, store.ErrNotFound
	}
	if err != nil {
		return store.Instance{}, fmt.Errorf("index: %w", err)
	}
	in.ReceivedAt = in.ReceivedAt.UTC()
	return in, nil
}

// nullIfZero stores an absent number (0 in Instance) as NULL, so a query can tell "no Instance
// Number" from any value.
func nullIfZero(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

// text makes a value storable in a PostgreSQL text column, which holds valid UTF-8 without NUL:
// store.Instance's decoded values are UTF-8 already, but a CS or DA value with bytes beyond ASCII
// (against the standard) is not decoded, and the instance must not be refused for it. The bad
// bytes become U+FFFD; SQLite, which stores any bytes, keeps them as sent.
func text(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// Attribute updates keep a stored value when the new instance has none: the instances of a study
// do not all repeat every study attribute. Put reads the rows first and writes only those that
// change, so that the Puts of one series, on any node, do not queue behind each other's lock on
// its unchanged rows.
const (
	selectPatient = `SELECT pk, patient_name, birth_date, sex FROM patient WHERE patient_id = $1 AND issuer = $2`
	upsertPatient = `
INSERT INTO patient (patient_id, issuer, patient_name, birth_date, sex) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (patient_id, issuer) DO UPDATE SET
	patient_name = COALESCE(NULLIF(excluded.patient_name, ''), patient.patient_name),
	birth_date   = COALESCE(NULLIF(excluded.birth_date, ''), patient.birth_date),
	sex          = COALESCE(NULLIF(excluded.sex, ''), patient.sex)
RETURNING pk`
	selectStudy = `SELECT pk, patient_pk, study_date, study_time, accession_number, study_id, study_description,
	referring_physician_name FROM study WHERE study_uid = $1`
	upsertStudy = `
INSERT INTO study (study_uid, patient_pk, study_date, study_time, accession_number, study_id,
	study_description, referring_physician_name, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (study_uid) DO UPDATE SET
	patient_pk               = excluded.patient_pk,
	study_date               = COALESCE(NULLIF(excluded.study_date, ''), study.study_date),
	study_time               = COALESCE(NULLIF(excluded.study_time, ''), study.study_time),
	accession_number         = COALESCE(NULLIF(excluded.accession_number, ''), study.accession_number),
	study_id                 = COALESCE(NULLIF(excluded.study_id, ''), study.study_id),
	study_description        = COALESCE(NULLIF(excluded.study_description, ''), study.study_description),
	referring_physician_name = COALESCE(NULLIF(excluded.referring_physician_name, ''), study.referring_physician_name),
	updated_at               = excluded.updated_at
RETURNING pk`
	selectSeries = `SELECT pk, study_pk, modality, series_number, series_description, series_date, series_time,
	body_part_examined FROM series WHERE series_uid = $1`
	upsertSeries = `
INSERT INTO series (series_uid, study_pk, modality, series_number, series_description,
	series_date, series_time, body_part_examined, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (series_uid) DO UPDATE SET
	study_pk           = excluded.study_pk,
	modality           = COALESCE(NULLIF(excluded.modality, ''), series.modality),
	series_number      = COALESCE(excluded.series_number, series.series_number),
	series_description = COALESCE(NULLIF(excluded.series_description, ''), series.series_description),
	series_date        = COALESCE(NULLIF(excluded.series_date, ''), series.series_date),
	series_time        = COALESCE(NULLIF(excluded.series_time, ''), series.series_time),
	body_part_examined = COALESCE(NULLIF(excluded.body_part_examined, ''), series.body_part_examined),
	updated_at         = excluded.updated_at
RETURNING pk`
	upsertInstance = `
INSERT INTO instance (sop_instance_uid, series_pk, sop_class_uid, instance_number, num_rows, num_columns,
	number_of_frames, image_type, photometric_interpretation, specific_character_set, transfer_syntax_uid,
	path, size, dataset_offset, received_at, calling_ae, called_ae, remote_addr)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
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
	deleteEmptySeries  = `DELETE FROM series WHERE pk = $1 AND NOT EXISTS (SELECT 1 FROM instance WHERE series_pk = $1) RETURNING study_pk`
	deleteEmptyStudy   = `DELETE FROM study WHERE pk = $1 AND NOT EXISTS (SELECT 1 FROM series WHERE study_pk = $1) RETURNING patient_pk`
	deleteEmptyPatient = `DELETE FROM patient WHERE pk = $1 AND NOT EXISTS (SELECT 1 FROM study WHERE patient_pk = $1)`
)

// maxAttempts bounds the runs of one Put's transaction when it may succeed run again: see
// retryable.
const maxAttempts = 6

// Put implements store.Index: one transaction per Put (PostgreSQL's commits need no batching
// here: see docs/SCALING.md), durable when it returns, that first takes a lock on the SOP
// Instance UID shared by every node, so that two copies of one instance arriving at two nodes at
// once are written one after the other: one row, the second replacing the first and told so.
func (db *DB) Put(ctx context.Context, in store.Instance, inTx func(store.Tx) error) (store.Replaced, error) {
	var prev store.Replaced
	var err error
	for attempt := 1; ; attempt++ {
		prev, err = db.putTx(ctx, in, inTx)
		if err == nil || attempt == maxAttempts || !retryable(err) {
			break
		}
		db.log.Debug().Err(err).Str("sop_instance_uid", in.SOPInstanceUID).Int("attempt", attempt).Msg("index: transaction run again")
		select {
		case <-time.After(50 * time.Millisecond << attempt):
		case <-ctx.Done():
			return store.Replaced{}, fmt.Errorf("index: %w (after %w)", ctx.Err(), err)
		}
	}
	if err != nil {
		return store.Replaced{}, fmt.Errorf("index: %w", err)
	}
	return prev, nil
}

// beginError is a transaction that could not start: nothing of it reached the database.
type beginError struct{ err error }

func (e beginError) Error() string { return "begin: " + e.err.Error() }
func (e beginError) Unwrap() error { return e.err }

func (db *DB) putTx(ctx context.Context, in store.Instance, inTx func(store.Tx) error) (store.Replaced, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return store.Replaced{}, beginError{err}
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	prev, err := db.put(ctx, tx, in)
	if err != nil {
		return store.Replaced{}, err
	}
	if inTx != nil {
		if err := inTx(&queueTx{tx: tx, q: db.Queue}); err != nil {
			return store.Replaced{}, fmt.Errorf("in the instance's transaction: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Replaced{}, fmt.Errorf("commit: %w", err)
	}
	return prev, nil
}

// retryable: running the Put's transaction again may succeed, and cannot do twice what it did
// once. That is when it could not begin (a connection the server closed, a server restarting:
// pgxpool drops the connection and dials a new one), when PostgreSQL aborted it for a deadlock or
// a serialization failure, and when another node's Remove deleted the emptied series or study
// the Put was adding to (a foreign key violation): the next run reads the rows afresh. A failed
// commit is not run again: whether it committed cannot be told.
func retryable(err error) bool {
	var be beginError
	if errors.As(err, &be) {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001" || pe.Code == "23503")
}

func keeps(stored, v string) bool { return v == "" || v == stored }

// put writes the rows of one Put in tx and returns what it replaced.
func (db *DB) put(ctx context.Context, tx pgx.Tx, in store.Instance) (store.Replaced, error) {
	var prev store.Replaced
	now := in.ReceivedAt.UTC()
	for _, p := range []*string{&in.PatientID, &in.IssuerOfPatientID, &in.PatientName, &in.PatientBirthDate, &in.PatientSex,
		&in.StudyDate, &in.StudyTime, &in.AccessionNumber, &in.StudyID, &in.StudyDescription, &in.ReferringPhysicianName,
		&in.Modality, &in.SeriesDescription, &in.SeriesDate, &in.SeriesTime, &in.BodyPartExamined, &in.ImageType,
		&in.PhotometricInterpretation, &in.SpecificCharacterSet, &in.CallingAE, &in.CalledAE, &in.RemoteAddr} {
		*p = text(*p)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, instanceLocks, in.SOPInstanceUID); err != nil {
		return prev, fmt.Errorf("instance lock: %w", err)
	}
	var prevSeries *int64
	err := tx.QueryRow(ctx, `SELECT series_pk, path, received_at FROM instance WHERE sop_instance_uid = $1`, in.SOPInstanceUID).
		Scan(&prevSeries, &prev.Path, &prev.ReceivedAt)
	switch {
	case err == nil:
		prev.Found = true
		prev.ReceivedAt = prev.ReceivedAt.UTC()
	case !errors.Is(err, pgx.ErrNoRows):
		return prev, fmt.Errorf("instance: %w", err)
	}

	var (
		patientPK              int64
		name, birth, sex       string
		patientFound, changed  bool
		studyPK, studyPatient  int64
		sDate, sTime, acc, sid string
		sDesc, refPhy          string
	)
	err = tx.QueryRow(ctx, selectPatient, in.PatientID, in.IssuerOfPatientID).Scan(&patientPK, &name, &birth, &sex)
	switch {
	case err == nil:
		patientFound = true
	case !errors.Is(err, pgx.ErrNoRows):
		return prev, fmt.Errorf("patient: %w", err)
	}
	changed = !patientFound || !keeps(name, in.PatientName) || !keeps(birth, in.PatientBirthDate) || !keeps(sex, in.PatientSex)
	if changed {
		if err := tx.QueryRow(ctx, upsertPatient, in.PatientID, in.IssuerOfPatientID, in.PatientName, in.PatientBirthDate,
			in.PatientSex).Scan(&patientPK); err != nil {
			return prev, fmt.Errorf("patient: %w", err)
		}
	}

	var prevPatient *int64
	err = tx.QueryRow(ctx, selectStudy, in.StudyInstanceUID).Scan(&studyPK, &studyPatient, &sDate, &sTime, &acc, &sid, &sDesc, &refPhy)
	switch {
	case err == nil:
		prevPatient = &studyPatient
		changed = studyPatient != patientPK || !keeps(sDate, in.StudyDate) || !keeps(sTime, in.StudyTime) ||
			!keeps(acc, in.AccessionNumber) || !keeps(sid, in.StudyID) || !keeps(sDesc, in.StudyDescription) ||
			!keeps(refPhy, in.ReferringPhysicianName)
	case errors.Is(err, pgx.ErrNoRows):
		changed = true
	default:
		return prev, fmt.Errorf("study: %w", err)
	}
	if changed {
		if err := tx.QueryRow(ctx, upsertStudy, in.StudyInstanceUID, patientPK, in.StudyDate, in.StudyTime, in.AccessionNumber,
			in.StudyID, in.StudyDescription, in.ReferringPhysicianName, now).Scan(&studyPK); err != nil {
			return prev, fmt.Errorf("study: %w", err)
		}
	}

	var (
		seriesPK, seriesStudy    int64
		modality, seDesc, seDate string
		seTime, bodyPart         string
		number                   *int
	)
	err = tx.QueryRow(ctx, selectSeries, in.SeriesInstanceUID).Scan(&seriesPK, &seriesStudy, &modality, &number, &seDesc, &seDate, &seTime, &bodyPart)
	switch {
	case err == nil:
		changed = seriesStudy != studyPK || !keeps(modality, in.Modality) ||
			(in.SeriesNumber != 0 && (number == nil || *number != in.SeriesNumber)) ||
			!keeps(seDesc, in.SeriesDescription) || !keeps(seDate, in.SeriesDate) || !keeps(seTime, in.SeriesTime) ||
			!keeps(bodyPart, in.BodyPartExamined)
	case errors.Is(err, pgx.ErrNoRows):
		changed = true
	default:
		return prev, fmt.Errorf("series: %w", err)
	}
	if changed {
		if err := tx.QueryRow(ctx, upsertSeries, in.SeriesInstanceUID, studyPK, in.Modality, nullIfZero(in.SeriesNumber),
			in.SeriesDescription, in.SeriesDate, in.SeriesTime, in.BodyPartExamined, now).Scan(&seriesPK); err != nil {
			return prev, fmt.Errorf("series: %w", err)
		}
	}

	if _, err := tx.Exec(ctx, upsertInstance, in.SOPInstanceUID, seriesPK, in.SOPClassUID,
		nullIfZero(in.InstanceNumber), nullIfZero(in.Rows), nullIfZero(in.Columns), nullIfZero(in.NumberOfFrames),
		in.ImageType, in.PhotometricInterpretation, in.SpecificCharacterSet, in.TransferSyntaxUID,
		in.Path, in.Size, in.DataSetOffset, now, in.CallingAE, in.CalledAE, in.RemoteAddr); err != nil {
		return prev, fmt.Errorf("instance: %w", err)
	}
	if prevSeries != nil && *prevSeries != seriesPK {
		if err := deleteEmpty(ctx, tx, *prevSeries); err != nil {
			return prev, err
		}
	}
	if prevPatient != nil && *prevPatient != patientPK {
		if _, err := tx.Exec(ctx, deleteEmptyPatient, *prevPatient); err != nil {
			return prev, err
		}
	}
	return prev, nil
}

// deleteEmpty removes a series left without instances, then its study and patient if they are
// left empty in turn.
func deleteEmpty(ctx context.Context, tx pgx.Tx, seriesPK int64) error {
	var studyPK, patientPK int64
	err := tx.QueryRow(ctx, deleteEmptySeries, seriesPK).Scan(&studyPK)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	err = tx.QueryRow(ctx, deleteEmptyStudy, studyPK).Scan(&patientPK)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, deleteEmptyPatient, patientPK)
	return err
}

// Counts implements store.Index.
func (db *DB) Counts(ctx context.Context) (store.Counts, error) {
	var c store.Counts
	err := db.pool.QueryRow(ctx, `SELECT
		(SELECT COUNT(*) FROM patient), (SELECT COUNT(*) FROM study),
		(SELECT COUNT(*) FROM series), (SELECT COUNT(*) FROM instance)`).
		Scan(&c.Patients, &c.Studies, &c.Series, &c.Instances)
	if err != nil {
		return store.Counts{}, fmt.Errorf("index: %w", err)
	}
	return c, nil
}

// Remove implements store.Index.
func (db *DB) Remove(ctx context.Context, uid string) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, instanceLocks, uid); err != nil {
			return err
		}
		var seriesPK int64
		err := tx.QueryRow(ctx, `DELETE FROM instance WHERE sop_instance_uid = $1 RETURNING series_pk`, uid).Scan(&seriesPK)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		return deleteEmpty(ctx, tx, seriesPK)
	})
	if errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}
