package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
)

// TestEveryKeyHasAColumn: the index matches every key store.Keys lists, at its level.
func TestEveryKeyHasAColumn(t *testing.T) {
	cols := columns()
	for tag, k := range store.Keys() {
		if _, ok := cols[tag]; !ok {
			t.Errorf("no column for %s", tag)
		}
		if _, _, err := where(store.Query{Level: k.Level, Matches: []store.Match{{Tag: tag, Values: []string{"1"}}}}); err != nil {
			t.Errorf("%s at %s level: %v", tag, k.Level, err)
		}
	}
	if len(cols) != len(store.Keys()) {
		t.Errorf("%d columns for %d keys", len(cols), len(store.Keys()))
	}
}

func instance(study, series, sop string) store.Instance {
	return store.Instance{PatientID: "P1", StudyInstanceUID: study, SeriesInstanceUID: series, SOPInstanceUID: sop,
		SOPClassUID: "1.2.840.10008.5.1.4.1.1.7", TransferSyntaxUID: dcm.ExplicitVRLittleEndian, Path: "x", Size: 10,
		DataSetOffset: 4, ReceivedAt: time.Now()}
}

// TestMigrateFromVersion1: an index made before the data set offset was recorded opens, keeps
// its rows (offset 0: unknown) and gains the series table.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "index.db")
	db, err := sql.Open("sqlite", fileURI(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{migrations()[0], `CREATE TABLE schema_version (version INTEGER NOT NULL)`, `INSERT INTO schema_version VALUES (1)`,
		`INSERT INTO patient (pk, patient_id) VALUES (1, 'P1')`,
		`INSERT INTO study (pk, patient_pk, study_uid, updated_at) VALUES (1, 1, '1.1', '2024-01-01T00:00:00Z')`,
		`INSERT INTO series (pk, study_pk, series_uid, updated_at) VALUES (1, 1, '1.1.1', '2024-01-01T00:00:00Z')`,
		`INSERT INTO instance (series_pk, sop_instance_uid, sop_class_uid, transfer_syntax_uid, path, size, received_at)
			VALUES (1, '1.1.1.1', '1.2.3', '1.2.840.10008.1.2', 'archive/1.1/1.1.1/1.1.1.1.dcm', 100, '2024-01-01T00:00:00Z')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	x, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	in, err := x.Get(ctx, "1.1.1.1")
	if err != nil || in.DataSetOffset != 0 || in.Size != 100 {
		t.Fatalf("migrated row %+v (%v)", in, err)
	}
	if _, _, err := x.SeriesInstances(ctx, "1.1.1"); err != nil {
		t.Errorf("series table after migration: %v", err)
	}
	var v int
	if err := x.w.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil || v != len(migrations()) {
		t.Errorf("schema version %d (%v), want %d", v, err, len(migrations()))
	}
	// Each index of instance costs every Put a B-tree insert: only those a query reads stay.
	rows, err := x.w.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'instance' AND sql IS NOT NULL ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if want := []string{"instance_series", "instance_sop_class"}; !slices.Equal(names, want) {
		t.Errorf("indexes of instance after migration: %v, want %v", names, want)
	}
}

// TestMigrateRecodesToUTF8: rows indexed before version 3 hold text as received; the migration
// decodes them from their instances' character sets (Latin-1, ISO 2022 Japanese) and leaves
// UTF-8, ASCII and rows of instances without a character set as they were.
func TestMigrateRecodesToUTF8(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "index.db")
	db, err := sql.Open("sqlite", fileURI(path))
	if err != nil {
		t.Fatal(err)
	}
	const jis = "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"
	stmts := []string{migrations()[0], migrations()[1], `CREATE TABLE schema_version (version INTEGER NOT NULL)`, `INSERT INTO schema_version VALUES (2)`}
	for i, p := range []struct{ name, charset, description string }{
		{"M\xfcller^J\xfcrgen", `ISO_IR 100`, "Sch\xe4del"},
		{"Müller^Jürgen", `ISO_IR 192`, "Schädel"},
		{jis, `\ISO 2022 IR 87`, "CT"},
		{"Doe^John", ``, "Head"},
	} {
		n := i + 1
		stmts = append(stmts,
			fmt.Sprintf(`INSERT INTO patient (pk, patient_id, patient_name) VALUES (%d, 'P%d', CAST(X'%x' AS TEXT))`, n, n, p.name),
			fmt.Sprintf(`INSERT INTO study (pk, patient_pk, study_uid, study_description, updated_at) VALUES (%d, %d, '1.%d', CAST(X'%x' AS TEXT), '2024-01-01T00:00:00Z')`, n, n, n, p.description),
			fmt.Sprintf(`INSERT INTO series (pk, study_pk, series_uid, updated_at) VALUES (%d, %d, '1.%d.1', '2024-01-01T00:00:00Z')`, n, n, n),
			fmt.Sprintf(`INSERT INTO instance (series_pk, sop_instance_uid, sop_class_uid, specific_character_set, transfer_syntax_uid, path, size, received_at)
				VALUES (%d, '1.%d.1.1', '1.2.3', '%s', '1.2.840.10008.1.2', 'a', 100, '2024-01-01T00:00:00Z')`, n, n, p.charset))
	}
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	x, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for uid, want := range map[string][2]string{
		"1.1.1.1": {"Müller^Jürgen", "Schädel"},
		"1.2.1.1": {"Müller^Jürgen", "Schädel"},
		"1.3.1.1": {"Yamada^Tarou=山田^太郎=やまだ^たろう", "CT"},
		"1.4.1.1": {"Doe^John", "Head"},
	} {
		in, err := x.Get(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		if in.PatientName != want[0] || in.StudyDescription != want[1] {
			t.Errorf("%s: name %q description %q, want %q %q", uid, in.PatientName, in.StudyDescription, want[0], want[1])
		}
	}
}
