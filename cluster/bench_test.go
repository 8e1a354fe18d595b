package cluster

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// benchInstances 64x64 Secondary Captures (8 KiB each) are sent in every measurement,
	// over benchAssociations storescu at once.
	benchInstances    = 1200
	benchAssociations = 6
)

// benchConfig is one cluster the benchmark measures: n nodes on a backend's storage.
type benchConfig struct {
	name string
	be   backend
	n    int
}

// BenchmarkIngestScale measures ingest throughput (instances acknowledged a second) with one,
// two and three nodes behind HAProxy, on the same files, in the same run: each iteration is a
// round of every configuration, in alternating order, each on a fresh index and archive.
// Reported: the median instances/s of each, the ratios to the first (one node), and the nodes'
// CPU per instance. On the shared engines one node on SQLite and the file archive, today's
// default, is measured beside them as the reference. Run it with bench/scale/run.sh. Nothing is
// segmented (no channel takes the instances): this is the receive path (association, C-STORE,
// archive write, index row, acknowledgement) through the load balancer.
func BenchmarkIngestScale(b *testing.B) {
	onnxRuntime(b)
	be := engines[len(engines)-1].start(b)
	configs := []benchConfig{{"1 node", be, 1}, {"2 nodes", be, 2}, {"3 nodes", be, 3}}
	if len(be.roles()) > 1 {
		configs = append(configs, benchConfig{"1 node, SQLite and file archive", localBackend{}, 1})
	}
	files := secondaryCaptures(b, benchInstances, filepath.Join(b.TempDir(), "sc"))
	lists := make([][]string, benchAssociations)
	for i, f := range files {
		lists[i%benchAssociations] = append(lists[i%benchAssociations], f)
	}
	destPort := freePort(b) // nothing is routed: no SEG is ever sent there
	perSec := make([][]float64, len(configs))
	cpuPer := make([][]float64, len(configs))
	b.ResetTimer()
	for round := range b.N {
		order := make([]int, len(configs))
		for i := range order {
			order[i] = i
		}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, c := range order {
			b.StopTimer()
			cfg := configs[c]
			nodes, lb := startCluster(b, make([]string, cfg.n), destPort, cfg.be.newStorage(b))
			cpu0 := nodesCPU(b, nodes)
			var acked atomic.Int64
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			b.StartTimer()
			t0 := time.Now()
			wait := startSenders(ctx, lb.addr(), lists, io.Discard, func(string) { acked.Add(1) })
			_, errs := wait()
			d := time.Since(t0)
			b.StopTimer()
			cancel()
			cpu := nodesCPU(b, nodes) - cpu0
			for _, err := range errs {
				b.Error(err)
			}
			if acked.Load() != benchInstances {
				b.Fatalf("%s: %d of %d instances acknowledged", cfg.name, acked.Load(), benchInstances)
			}
			for _, nd := range nodes {
				nd.kill()
			}
			lb.stop()
			perSec[c] = append(perSec[c], benchInstances/d.Seconds())
			cpuPer[c] = append(cpuPer[c], cpu*1000/benchInstances)
			b.StartTimer()
		}
	}
	b.StopTimer()
	lines := []string{fmt.Sprintf("%s; %d CPU cores (GOMAXPROCS %d); %d instances of 8 KiB over %d associations; %d rounds",
		be.describe(), runtime.NumCPU(), runtime.GOMAXPROCS(0), benchInstances, benchAssociations, b.N)}
	one := median(perSec[0])
	for i, cfg := range configs {
		lo, hi := minMax(perSec[i])
		med := median(perSec[i])
		unit := strings.ReplaceAll(strings.ReplaceAll(cfg.name, ",", ""), " ", "-")
		b.ReportMetric(med, "inst/s-"+unit)
		b.ReportMetric(median(cpuPer[i]), "cpu-ms/inst-"+unit)
		if i > 0 {
			b.ReportMetric(med/one, "ratio-"+unit)
		}
		lines = append(lines, fmt.Sprintf("%-32s %6.0f instances/s (%.0f..%.0f)  %.2fx %s  %.2f ms node CPU per instance",
			cfg.name+":", med, lo, hi, med/one, configs[0].name, median(cpuPer[i])))
	}
	b.Log(strings.Join(lines, "\n"))
}

// nodesCPU is the CPU time the nodes' processes have used so far.
func nodesCPU(tb testing.TB, nodes []*node) float64 {
	tb.Helper()
	sum := 0.0
	for _, n := range nodes {
		s, err := n.cpuSeconds()
		if err != nil {
			tb.Fatal(err)
		}
		sum += s
	}
	return sum
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[(len(s)-1)/2]
}

func minMax(v []float64) (float64, float64) {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0, 0
	}
	return s[0], s[len(s)-1]
}
