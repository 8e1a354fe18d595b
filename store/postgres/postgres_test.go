package postgres

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/indextest"
	"github.com/espnode/espnode/store/postgres/pgtest"
)

func open(t testing.TB, url string) *DB {
	t.Helper()
	db, err := Open(context.Background(), url, zerolog.Nop(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestContract runs the seams' contract (store/indextest), which store/sqlite runs too, each
// test on a database of its own.
func TestContract(t *testing.T) {
	srv := pgtest.Start(t)
	indextest.Run(t, func(t *testing.T) indextest.Engine { return open(t, srv.NewDatabase(t)) })
}

// TestConcurrentMigrations: nodes started at once on a new database all open it; the schema is
// made once.
func TestConcurrentMigrations(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	const nodes = 4
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := Open(context.Background(), url, zerolog.Nop(), Options{})
			if err == nil {
				db.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	db := open(t, url)
	var versions, v int
	if err := db.pool.QueryRow(context.Background(), `SELECT COUNT(*), MAX(version) FROM schema_version`).Scan(&versions, &v); err != nil {
		t.Fatal(err)
	}
	if versions != 1 || v != len(migrations()) {
		t.Errorf("schema_version holds %d rows, version %d; want one, %d", versions, v, len(migrations()))
	}
}

// TestSameInstanceAtTwoNodes: two nodes (two DBs on one database) putting the same SOP instance
// at the same moment, again and again, leave one row; exactly one of the Puts made it, every
// other one replaced a row and was told so.
func TestSameInstanceAtTwoNodes(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	nodes := []*DB{open(t, url), open(t, url)}
	const rounds, perNode = 20, 4
	ctx := context.Background()
	for r := range rounds {
		uid := fmt.Sprintf("1.2.%d.1", r)
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			fresh int
			errs  []error
		)
		for i := range len(nodes) * perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in := indextest.Instance("1.2", fmt.Sprintf("1.2.%d", r), uid)
				in.CalledAE = fmt.Sprint("NODE", i%len(nodes))
				prev, err := nodes[i%len(nodes)].Put(ctx, in, nil)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else if !prev.Found {
					fresh++
				}
			}()
		}
		wg.Wait()
		if len(errs) > 0 || fresh != 1 {
			t.Fatalf("round %d: %d Puts found no row (want 1), errors %v", r, fresh, errs)
		}
	}
	c, err := nodes[0].Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c != (store.Counts{Patients: 1, Studies: 1, Series: rounds, Instances: rounds}) {
		t.Errorf("counts %+v, want one row per instance", c)
	}
}

// TestServerRestart: a restart of PostgreSQL (a failover, an upgrade) costs the node nothing
// it acknowledged: the rows are there afterwards, and Puts and reads work again on new
// connections without reopening the index.
func TestServerRestart(t *testing.T) {
	srv := pgtest.Start(t)
	db := open(t, srv.NewDatabase(t))
	ctx := context.Background()
	if _, err := db.Put(ctx, indextest.Instance("1.2", "1.2.3", "1.2.3.1"), nil); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	if _, err := db.Put(ctx, indextest.Instance("1.2", "1.2.3", "1.2.3.2"), nil); err != nil {
		t.Fatalf("Put after the restart: %v", err)
	}
	for _, uid := range []string{"1.2.3.1", "1.2.3.2"} {
		if _, err := db.Get(ctx, uid); err != nil {
			t.Errorf("%s after the restart: %v", uid, err)
		}
	}
}

// TestSeriesAcrossNodes: the instances of one series received by two nodes are one series to
// either (series mode segments them together wherever its job runs).
func TestSeriesAcrossNodes(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	nodes := []*DB{open(t, url), open(t, url)}
	ctx := context.Background()
	for i, n := range nodes {
		if _, err := n.NewClient(&river.Config{}); err != nil {
			t.Fatal(err)
		}
		for j := range 3 {
			num := 2*j + i + 1
			in := indextest.Instance("1.2", "1.2.3", fmt.Sprintf("1.2.3.%d", num))
			_, err := n.Put(ctx, in, func(tx store.Tx) error {
				return tx.RecordSeriesInstance(ctx, in.SeriesInstanceUID, in.SOPInstanceUID, num, in.ReceivedAt)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []string{"1.2.3.1", "1.2.3.2", "1.2.3.3", "1.2.3.4", "1.2.3.5", "1.2.3.6"}
	for i, n := range nodes {
		if uids, _, err := n.SeriesInstances(ctx, "1.2.3"); err != nil || !slices.Equal(uids, want) {
			t.Errorf("node %d sees %v (%v), want %v", i, uids, err, want)
		}
	}
}
