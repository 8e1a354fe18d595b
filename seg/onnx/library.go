// Package onnx runs the node's segmentation models through ONNX Runtime: it finds the
// ONNX Runtime shared library, picks an execution provider, validates a model file against the
// model contract (docs/DESIGN.md, "The model contract"), and serves concurrent callers from one
// session per file, gathering their images into batches.
package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryEnv is the environment variable that names the ONNX Runtime shared library.
const LibraryEnv = "ONNXRUNTIME_SHARED_LIBRARY_PATH"

// LibraryVersion is the ONNX Runtime release the node is built and tested against. The bindings
// (onnxruntime_go v1.35.0) request C API version 29, which 1.29 and later releases provide.
const LibraryVersion = "1.30.0"

// minAPIVersion is the ORT_API_VERSION of the C headers that onnxruntime_go v1.35.0 compiles.
const minAPIVersion = 29

// libraryNames are the file names tried next to the binary and in the system directories.
var libraryNames = []string{"libonnxruntime.so.1", "libonnxruntime.so." + LibraryVersion, "libonnxruntime.so"}

// systemLibraryDirs are where a distribution or a manual install puts shared libraries.
var systemLibraryDirs = []string{
	"/usr/local/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
}

// ErrLibraryNotFound is returned (wrapped) by FindLibrary when no candidate exists.
var ErrLibraryNotFound = errors.New("ONNX Runtime shared library not found")

// FindLibrary returns the path of the ONNX Runtime shared library. It tries, in order, explicit
// (a flag or the configuration), $ONNXRUNTIME_SHARED_LIBRARY_PATH, the directory of the running
// binary, $LD_LIBRARY_PATH and the system library directories. An explicit path or the
// environment variable that names a missing file is an error rather than a reason to look
// further: the user asked for that file, and silently loading another one would hide the typo.
func FindLibrary(explicit string) (string, error) {
	return findLibrary(explicit, os.Getenv(LibraryEnv), executableDir(), os.Getenv("LD_LIBRARY_PATH"), systemLibraryDirs)
}

func findLibrary(explicit, env, exeDir, ldPath string, systemDirs []string) (string, error) {
	for _, named := range []struct{ path, from string }{{explicit, "--onnxruntime"}, {env, "$" + LibraryEnv}} {
		if named.path == "" {
			continue
		}
		if _, err := os.Stat(named.path); err != nil {
			return "", fmt.Errorf("%w: %s names %s: %v; %s", ErrLibraryNotFound, named.from, named.path, err, libraryHint)
		}
		return named.path, nil
	}
	var dirs []string
	if exeDir != "" {
		dirs = append(dirs, exeDir)
	}
	for _, d := range filepath.SplitList(ldPath) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	dirs = append(dirs, systemDirs...)
	for _, d := range dirs {
		for _, n := range libraryNames {
			p := filepath.Join(d, n)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%w (looked for %s via --onnxruntime, $%s, next to the binary and in %s); %s",
		ErrLibraryNotFound, strings.Join(libraryNames, ", "), LibraryEnv, strings.Join(dirs, ":"), libraryHint)
}

const libraryHint = "get it with `scripts/deps.sh run` (npm pack onnxruntime-node@" + LibraryVersion +
	", which puts libonnxruntime.so.1 in third_party/onnxruntime/), or download onnxruntime-linux-x64-" +
	LibraryVersion + ".tgz from https://github.com/microsoft/onnxruntime/releases, then set $" + LibraryEnv +
	" or pass --onnxruntime"

func executableDir() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	return filepath.Dir(exe)
}

// The ONNX Runtime environment is process-wide in onnxruntime_go (one dlopen, one OrtEnv), so
// this package mirrors it with process-wide bookkeeping: every model shares the one environment,
// and a request for a second, different library is an error instead of a silent mix.
var (
	envMu   sync.Mutex
	envPath string
)

// initEnvironment loads the library at path and creates the ONNX Runtime environment, once per
// process.
func initEnvironment(path string) error {
	envMu.Lock()
	defer envMu.Unlock()
	if ort.IsInitialized() {
		if envPath != "" && envPath != path {
			return fmt.Errorf("ONNX Runtime is already loaded from %s; cannot also load %s in the same process", envPath, path)
		}
		return nil
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		// A release older than 1.29 lacks C API version 29 and fails here with a bare
		// "Error setting ORT API base"; say what would work.
		return fmt.Errorf("load ONNX Runtime from %s: %w (the node needs release 1.29 or later, C API version %d, and is tested with %s; %s)",
			path, err, minAPIVersion, LibraryVersion, libraryHint)
	}
	envPath = path
	return nil
}

// LoadLibrary finds the ONNX Runtime library (see FindLibrary) and initialises the process-wide
// environment with it. It returns the path loaded and the library's version string.
func LoadLibrary(explicit string) (path, version string, err error) {
	path, err = FindLibrary(explicit)
	if err != nil {
		return "", "", err
	}
	if err := initEnvironment(path); err != nil {
		return "", "", err
	}
	return path, ort.GetVersion(), nil
}
