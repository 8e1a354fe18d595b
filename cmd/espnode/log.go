package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal, which selects human-readable output.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newLogger builds the process logger: JSON lines by default, console lines on a terminal.
// Each of also gets every line as JSON (the console's ring of recent errors).
func newLogger(w io.Writer, level, format string, also ...zerolog.LevelWriter) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("log level %q: want trace, debug, info, warn or error", level)
	}
	switch format {
	case "console", "auto", "":
		if format == "console" || (format != "json" && isTerminal(w)) {
			w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !isTerminal(w)}
		}
	case "json":
	default:
		return zerolog.Logger{}, fmt.Errorf("log format %q: want auto, json or console", format)
	}
	if len(also) > 0 {
		ws := []io.Writer{w}
		for _, a := range also {
			ws = append(ws, a)
		}
		w = zerolog.MultiLevelWriter(ws...)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}
