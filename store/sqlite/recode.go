package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/espnode/espnode/dcm"
)

// goMigrations are the steps that SQL cannot do, each run right after the SQL migration to the
// same schema version, in its transaction. A step is found by its SQL migration's text, not by a
// version number, so that migrations appended on other branches can be ordered at a merge
// without renumbering it.
func goMigrations() map[int]func(context.Context, *sql.Tx) error {
	steps := map[int]func(context.Context, *sql.Tx) error{}
	for i, q := range migrations() {
		if strings.Contains(q, "CREATE INDEX instance_charset") {
			steps[i+1] = recodeToUTF8
		}
	}
	return steps
}

// recodeToUTF8 decodes the text columns of rows indexed before the index held UTF-8 (store.Instance:
// values of the PN, LO and SH keys decoded from the instance's Specific Character Set). Each
// patient, study and series row is decoded in the character set of one of its instances, as
// Put would have done; values in ASCII, or of instances in UTF-8 or without a character set, are
// already what Put now writes.
func recodeToUTF8(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `
SELECT i.specific_character_set, se.pk, st.pk, st.patient_pk FROM instance i
JOIN series se ON se.pk = i.series_pk JOIN study st ON st.pk = se.study_pk
WHERE i.specific_character_set NOT IN ('', 'ISO_IR 6', 'ISO 2022 IR 6', 'ISO_IR 192')`)
	if err != nil {
		return err
	}
	type owner struct {
		charset            string
		series, study, pat int64
	}
	var owners []owner
	for rows.Next() {
		var o owner
		if err := rows.Scan(&o.charset, &o.series, &o.study, &o.pat); err != nil {
			rows.Close()
			return err
		}
		owners = append(owners, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	done := map[string]bool{}
	for _, o := range owners {
		cs := strings.Split(o.charset, `\`)
		for _, t := range []struct {
			table   string
			pk      int64
			columns []string
		}{
			{"patient", o.pat, []string{"patient_id", "issuer", "patient_name"}},
			{"study", o.study, []string{"accession_number", "study_id", "study_description", "referring_physician_name"}},
			{"series", o.series, []string{"series_description"}},
		} {
			key := fmt.Sprint(t.table, t.pk)
			if done[key] {
				continue
			}
			done[key] = true
			if err := recodeRow(ctx, tx, t.table, t.pk, t.columns, cs); err != nil {
				return fmt.Errorf("%s %d: %w", t.table, t.pk, err)
			}
		}
	}
	return nil
}

func recodeRow(ctx context.Context, tx *sql.Tx, table string, pk int64, columns, charset []string) error {
	values := make([]string, len(columns))
	ptrs := make([]any, len(columns))
	for i := range values {
		ptrs[i] = &values[i]
	}
	// Table and column names come from recodeToUTF8's literals, never from data.
	if err := tx.QueryRowContext(ctx, "SELECT "+strings.Join(columns, ", ")+" FROM "+table+" WHERE pk = ?", pk).Scan(ptrs...); err != nil {
		return err
	}
	var sets []string
	var args []any
	for i, v := range values {
		if !needsDecoding(v) {
			continue
		}
		u, _ := dcm.DecodeText([]byte(v), charset) // an unknown term decodes as Latin-1, as Put does
		sets = append(sets, columns[i]+" = ?")
		args = append(args, u)
	}
	if len(sets) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, "UPDATE "+table+" SET "+strings.Join(sets, ", ")+" WHERE pk = ?", append(args, pk)...)
	return err
}

// needsDecoding: a value of only ASCII without escape sequences reads the same in every
// character set.
func needsDecoding(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] >= 0x80 || v[i] == 0x1B {
			return true
		}
	}
	return false
}
