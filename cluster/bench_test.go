package cluster

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
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

// BenchmarkIngestScale measures ingest throughput (instances acknowledged a second) with one,
// two and three nodes behind HAProxy, on the same files, in the same run: each iteration is a
// round of the three, in alternating order, each on a fresh index and archive. Reported: the
// median instances/s of each count, the ratios to one node, and the nodes' CPU per instance.
// Run it with bench/scale/run.sh. Nothing is segmented (no channel takes the instances), so this
// is the receive path: association, C-STORE, archive write, index row, acknowledgement.
func BenchmarkIngestScale(b *testing.B) {
	be := scenarioBackend(b)
	files := secondaryCaptures(b, benchInstances, filepath.Join(b.TempDir(), "sc"))
	lists := make([][]string, benchAssociations)
	for i, f := range files {
		lists[i%benchAssociations] = append(lists[i%benchAssociations], f)
	}
	counts := []int{1, 2, 3}
	destPort := freePort(b) // nothing is routed: no SEG is ever sent there
	perSec := map[int][]float64{}
	cpuPer := map[int][]float64{}
	b.ResetTimer()
	for round := range b.N {
		order := append([]int(nil), counts...)
		if round%2 == 1 {
			for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
				order[i], order[j] = order[j], order[i]
			}
		}
		for _, n := range order {
			b.StopTimer()
			st := be.newStorage(b)
			nodes, lb := startCluster(b, n, destPort, st)
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
				b.Fatalf("%d nodes: %d of %d instances acknowledged", n, acked.Load(), benchInstances)
			}
			for _, nd := range nodes {
				nd.kill()
			}
			lb.stop()
			perSec[n] = append(perSec[n], benchInstances/d.Seconds())
			cpuPer[n] = append(cpuPer[n], cpu*1000/benchInstances)
			b.StartTimer()
		}
	}
	b.StopTimer()
	var lines []string
	lines = append(lines, fmt.Sprintf("%s; %d CPU cores (GOMAXPROCS %d); %d instances of 8 KiB over %d associations, %d rounds",
		be.describe(), runtime.NumCPU(), runtime.GOMAXPROCS(0), benchInstances, benchAssociations, b.N))
	one := median(perSec[1])
	for _, n := range counts {
		lo, hi := minMax(perSec[n])
		med := median(perSec[n])
		b.ReportMetric(med, fmt.Sprintf("inst/s-%dnode", n))
		if n > 1 {
			b.ReportMetric(med/one, fmt.Sprintf("ratio-%dv1", n))
		}
		b.ReportMetric(median(cpuPer[n]), fmt.Sprintf("cpu-ms/inst-%dnode", n))
		lines = append(lines, fmt.Sprintf("%d node(s): %.0f instances/s (%.0f..%.0f), %.2fx one node, %.2f ms node CPU per instance",
			n, med, lo, hi, med/one, median(cpuPer[n])))
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
