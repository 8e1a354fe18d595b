package queue

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/indextest"
	"github.com/espnode/espnode/store/postgres"
	"github.com/espnode/espnode/store/postgres/pgtest"
	"github.com/espnode/espnode/store/sqlite"
)

type noopArgs struct {
	N int `json:"n"`
}

func (noopArgs) Kind() string { return "bench.noop" }

// producers insert concurrently, as concurrent associations do.
const producers = 4

// BenchmarkQueue: b.N jobs, each inserted with an instance row in one Put, worked (nothing to
// do) by four workers and completed by River; jobs/s from the first insert to the last
// completion. Both engines durable (SQLite synchronous=FULL, PostgreSQL fsync and
// synchronous_commit on).
func BenchmarkQueue(b *testing.B) {
	srv := pgtest.Start(b)
	engines := []struct {
		name string
		open func(b *testing.B) indextest.Engine
	}{
		{"sqlite", func(b *testing.B) indextest.Engine {
			x, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "index.db"))
			if err != nil {
				b.Fatal(err)
			}
			return x
		}},
		{"postgres", func(b *testing.B) indextest.Engine {
			x, err := postgres.Open(context.Background(), srv.NewDatabase(b), zerolog.Nop(), postgres.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return x
		}},
	}
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) { benchQueue(b, e.open(b)) })
	}
}

func benchQueue(b *testing.B, x indextest.Engine) {
	defer x.Close()
	ctx := context.Background()
	var worked sync.WaitGroup
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[noopArgs]) error {
		worked.Done()
		return nil
	}))
	client, err := x.NewClient(&river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}},
		Workers:           workers,
		FetchPollInterval: 100 * time.Millisecond,
		FetchCooldown:     5 * time.Millisecond,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer client.Stop(ctx)
	// A fresh series each run: the rows of one series are what a stream of instances writes.
	series := fmt.Sprintf("1.2.%d", time.Now().UnixNano())
	b.ResetTimer()
	worked.Add(b.N)
	start := time.Now()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < b.N; i += producers {
				in := indextest.Instance("1.2", series, fmt.Sprintf("%s.%d", series, i))
				if _, err := x.Put(ctx, in, func(tx store.Tx) error { return tx.Enqueue(ctx, noopArgs{N: i}, nil) }); err != nil {
					b.Error(err)
					worked.Done()
				}
			}
		}()
	}
	wg.Wait()
	worked.Wait()
	// River completes in batches after the work: the run ends when every job is completed.
	for {
		c, err := x.JobCounts(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if c[store.JobKey{Kind: noopArgs{}.Kind(), State: rivertype.JobStateCompleted}] >= b.N {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}
