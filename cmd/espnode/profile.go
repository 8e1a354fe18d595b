package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"

	"github.com/espnode/espnode/config"
)

// ProfileDirEnv names a folder where the process writes its Go profiles: a CPU profile for its
// whole run (cpu.pprof) and, when it exits, the block, mutex and heap profiles (block.pprof,
// mutex.pprof, heap.pprof). bench/ingest sets it (PROFILE=1) so that a benchmark run can be
// profiled as it was measured; unset, nothing is recorded.
const ProfileDirEnv = config.EnvProfileDir

// startProfiles starts what ESPNODE_PROFILE_DIR asks for and returns the function that writes
// the profiles out; it reports problems to errw and never stops the command.
func startProfiles(dir string, errw io.Writer) (stop func()) {
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(errw, "espnode: %s: %v\n", ProfileDirEnv, err)
		return func() {}
	}
	// Every blocking event and every contended lock: the benchmark wants them all, and the
	// cost is only paid when profiling.
	runtime.SetBlockProfileRate(1)
	runtime.SetMutexProfileFraction(1)
	cpu, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err == nil {
		err = pprof.StartCPUProfile(cpu)
	}
	if err != nil {
		fmt.Fprintf(errw, "espnode: CPU profile: %v\n", err)
		cpu = nil
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		for _, name := range []string{"block", "mutex", "heap"} {
			f, err := os.Create(filepath.Join(dir, name+".pprof"))
			if err == nil {
				err = pprof.Lookup(name).WriteTo(f, 0)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				fmt.Fprintf(errw, "espnode: %s profile: %v\n", name, err)
			}
		}
	}
}
