// Command pixel measures the decode time per frame of every shared file in a compressed
// transfer syntax, through seg/pixel, beside DCMTK's (dcmdjpeg, dcmdjpls, dcmdrle) and GDCM's
// (gdcmconv --raw) command-line decoders on the same files in the same run.
//
// What each figure holds:
//   - espnode: Image.Frame for every frame, in one goroutine, the file already in memory (its
//     parse is not counted): entropy decoding, inverse transform, colour conversion where the
//     codec does it, and the stored values unpacked to int32 samples.
//   - a tool: the fastest time of `tool compressed.dcm out.dcm` less the fastest of the same
//     tool run on its own decompressed output (a file of the same size it reads, does not
//     decode, and writes): process start, parsing and file I/O are taken out, decoding and
//     its colour conversion stay.
//
// Time is CPU time (user + system, every thread: the process's rusage; for espnode, this
// process's rusage over the decode, garbage collection included) by default, since on a shared
// machine wall time mostly measures the neighbours; -clock wall measures elapsed time instead.
//
// Usage: go run ./bench/pixel [-runs 7] [-clock cpu|wall] [-shared DIR] [-only SUBSTRING]   (make bench-pixel)
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/seg/pixel"
)

type tool struct {
	name string
	args []string
	can  func(ts string) bool
}

var tools = []tool{
	{"dcmtk", nil, func(ts string) bool {
		switch ts {
		case dcm.JPEGBaseline8Bit, dcm.JPEGExtended12Bit, dcm.JPEGLossless, dcm.JPEGLosslessSV1, dcm.JPEGLSLossless, dcm.JPEGLSNearLossless, dcm.RLELossless:
			return true
		}
		return false
	}},
	{"gdcm", []string{"--raw"}, func(ts string) bool {
		switch ts {
		case dcm.HTJ2KLossless, dcm.HTJ2KLosslessRPCL, dcm.HTJ2K, dcm.JPEGXLLossless, dcm.JPEGXLJPEGRecompression, dcm.JPEGXL:
			return false
		}
		return true
	}},
}

func dcmtkTool(ts string) string {
	switch ts {
	case dcm.JPEGLSLossless, dcm.JPEGLSNearLossless:
		return "dcmdjpls"
	case dcm.RLELossless:
		return "dcmdrle"
	}
	return "dcmdjpeg"
}

func command(t tool, ts string) string {
	if t.name == "dcmtk" {
		return dcmtkTool(ts)
	}
	return "gdcmconv"
}

type row struct {
	file, ts       string
	frames, pixels int
	espnode        time.Duration // per frame
	tools          map[string]time.Duration
	toolErr        map[string]string
}

func main() {
	runs := flag.Int("runs", 7, "repetitions of each measurement (the fastest is reported)")
	shared := flag.String("shared", "../shared/data/dicom", "the shared DICOM folder (with INVENTORY.csv)")
	only := flag.String("only", "", "measure only files whose path contains this")
	clockName := flag.String("clock", "cpu", "cpu (user + system time) or wall (elapsed time)")
	flag.Parse()
	if *clockName != "cpu" && *clockName != "wall" {
		fmt.Fprintln(os.Stderr, "bench/pixel: -clock is cpu or wall")
		os.Exit(2)
	}
	if err := run(*shared, *only, *runs, *clockName == "cpu"); err != nil {
		fmt.Fprintln(os.Stderr, "bench/pixel:", err)
		os.Exit(1)
	}
}

func run(shared, only string, runs int, cpu bool) error {
	f, err := os.Open(filepath.Join(shared, "INVENTORY.csv"))
	if err != nil {
		return err
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "bench-pixel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var rows []row
	for _, r := range recs[1:] {
		rel, ts := r[0], r[3]
		s, ok := dcm.LookupTransferSyntax(ts)
		if !ok || !s.Encapsulated || !pixel.Decodable(ts) || !strings.Contains(rel, only) {
			continue
		}
		path := filepath.Join(shared, rel)
		rw, err := measure(path, ts, runs, cpu, tmp)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", rel, err)
			continue
		}
		rw.file = rel
		rows = append(rows, rw)
		fmt.Fprintf(os.Stderr, ".")
	}
	fmt.Fprintln(os.Stderr)
	report(rows, runs, cpu)
	return nil
}

func measure(path, ts string, runs int, cpu bool, tmp string) (row, error) {
	file, err := pixel.ReadFile(path)
	if err != nil {
		return row{}, err
	}
	im, err := pixel.NewImage(file)
	if err != nil {
		return row{}, err
	}
	rw := row{ts: ts, frames: im.NumFrames(), pixels: im.Rows * im.Columns, tools: map[string]time.Duration{}, toolErr: map[string]string{}}
	var times []time.Duration
	for range runs {
		start := now(cpu)
		for i := range im.NumFrames() {
			if _, err := im.Frame(i); err != nil {
				return row{}, fmt.Errorf("frame %d: %w", i, err)
			}
		}
		times = append(times, now(cpu)-start)
	}
	rw.espnode = fastest(times) / time.Duration(rw.frames)
	for _, t := range tools {
		if !t.can(ts) {
			continue
		}
		name := command(t, ts)
		out := filepath.Join(tmp, "out.dcm")
		native := filepath.Join(tmp, "native.dcm")
		// The tool's own decompressed file is the no-op input of the same size.
		if err := exec.Command(name, append(slices.Clone(t.args), path, native)...).Run(); err != nil {
			rw.toolErr[t.name] = "fails"
			continue
		}
		decode, err := timeRuns(runs, cpu, name, append(slices.Clone(t.args), path, out)...)
		if err != nil {
			rw.toolErr[t.name] = err.Error()
			continue
		}
		noop, err := timeRuns(runs, cpu, name, append(slices.Clone(t.args), native, out)...)
		if err != nil {
			rw.toolErr[t.name] = err.Error()
			continue
		}
		rw.tools[t.name] = max(decode-noop, 0) / time.Duration(rw.frames)
	}
	return rw, nil
}

func timeRuns(runs int, cpu bool, name string, args ...string) (time.Duration, error) {
	var times []time.Duration
	for range runs {
		cmd := exec.Command(name, args...)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%s: %v: %s", name, err, out)
		}
		if cpu {
			times = append(times, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		} else {
			times = append(times, time.Since(start))
		}
	}
	return fastest(times), nil
}

// now reads this process's clock: CPU time used so far (all threads), or the wall clock.
func now(cpu bool) time.Duration {
	if !cpu {
		return time.Duration(time.Now().UnixNano())
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(fmt.Sprintf("getrusage: %v", err))
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fastest is the least disturbed of the runs: the machines this runs on are shared.
func fastest(d []time.Duration) time.Duration { return slices.Min(d) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }

func report(rows []row, runs int, cpu bool) {
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].ts < rows[j].ts })
	clock := "wall time"
	if cpu {
		clock = "CPU time (user + system)"
	}
	fmt.Printf("bench/pixel: %s, %d CPUs, %s, fastest of %d runs, %s\n\n", runtime.Version(), runtime.NumCPU(), clock, runs, time.Now().UTC().Format(time.DateTime+" UTC"))
	fmt.Println("| syntax | file | frames x pixels | espnode ms/frame | DCMTK ms/frame (net) | GDCM ms/frame (net) | DCMTK / espnode | GDCM / espnode |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	// Per syntax, all frames of its files: the tool's time and espnode's on the files the tool
	// decodes.
	type agg struct{ espD, dcmtk, espG, gdcm time.Duration }
	sums := map[string]*agg{}
	for _, r := range rows {
		cells := []string{}
		ratios := []string{}
		for _, t := range []string{"dcmtk", "gdcm"} {
			d, ok := r.tools[t]
			switch {
			case ok:
				cells = append(cells, ms(d))
				ratios = append(ratios, fmt.Sprintf("%.2f", float64(d)/float64(r.espnode)))
			case r.toolErr[t] != "":
				cells, ratios = append(cells, "fails"), append(ratios, "")
			default:
				cells, ratios = append(cells, "-"), append(ratios, "")
			}
		}
		fmt.Printf("| %s | %s | %d x %d | %s | %s | %s | %s | %s |\n", strings.TrimPrefix(r.ts, "1.2.840.10008."), r.file, r.frames, r.pixels, ms(r.espnode), cells[0], cells[1], ratios[0], ratios[1])
		a := sums[r.ts]
		if a == nil {
			a = &agg{}
			sums[r.ts] = a
		}
		n := time.Duration(r.frames)
		if d, ok := r.tools["dcmtk"]; ok {
			a.espD += r.espnode * n
			a.dcmtk += d * n
		}
		if d, ok := r.tools["gdcm"]; ok {
			a.espG += r.espnode * n
			a.gdcm += d * n
		}
	}
	fmt.Println()
	fmt.Println("| syntax | DCMTK / espnode | GDCM / espnode |")
	fmt.Println("| --- | --- | --- |")
	var keys []string
	for k := range sums {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ratio := func(tool, esp time.Duration) string {
		if tool == 0 || esp == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", float64(tool)/float64(esp))
	}
	for _, k := range keys {
		a := sums[k]
		fmt.Printf("| %s (%s) | %s | %s |\n", strings.TrimPrefix(k, "1.2.840.10008."), dcm.TransferSyntaxName(k), ratio(a.dcmtk, a.espD), ratio(a.gdcm, a.espG))
	}
}
