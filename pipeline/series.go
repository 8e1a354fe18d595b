package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// The series table remembers, per series in series mode, which instances
// arrived and when the last one did. It lives beside River's tables in the
// index database and is written in the instance's own transaction; the
// statements are plain SQL that PostgreSQL runs as well.
func migrateSeries(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `
CREATE TABLE IF NOT EXISTS pipeline_series_instance (
	series_uid       TEXT NOT NULL,
	sop_instance_uid TEXT NOT NULL,
	instance_number  INTEGER NOT NULL,
	received_at      BIGINT NOT NULL,
	PRIMARY KEY (series_uid, sop_instance_uid)
)`)
	return err
}

func recordSeriesInstance(ctx context.Context, tx *sql.Tx, series, sop string, number int, received time.Time) error {
	_, err := tx.ExecContext(ctx, `
INSERT INTO pipeline_series_instance (series_uid, sop_instance_uid, instance_number, received_at)
VALUES (?, ?, ?, ?)
ON CONFLICT (series_uid, sop_instance_uid) DO UPDATE SET
	instance_number = excluded.instance_number, received_at = excluded.received_at`,
		series, sop, number, received.UnixNano())
	if err != nil {
		return fmt.Errorf("series %s: %w", series, err)
	}
	return nil
}

// seriesInstances returns the SOP Instance UIDs of a series in instance
// number order and when the last of them arrived.
func seriesInstances(ctx context.Context, db *sql.DB, series string) ([]string, time.Time, error) {
	rows, err := db.QueryContext(ctx, `
SELECT sop_instance_uid, received_at FROM pipeline_series_instance
WHERE series_uid = ? ORDER BY instance_number, sop_instance_uid`, series)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("series %s: %w", series, err)
	}
	defer rows.Close()
	var (
		uids []string
		last int64
	)
	for rows.Next() {
		var uid string
		var at int64
		if err := rows.Scan(&uid, &at); err != nil {
			return nil, time.Time{}, fmt.Errorf("series %s: %w", series, err)
		}
		uids = append(uids, uid)
		last = max(last, at)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("series %s: %w", series, err)
	}
	return uids, time.Unix(0, last), nil
}
