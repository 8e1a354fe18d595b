package console

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// LogRing keeps the last warnings and errors of the node's log for the console: a
// zerolog.LevelWriter to add beside the log's own output (zerolog.MultiLevelWriter), bounded in
// entries and in the length of each.
type LogRing struct {
	mu      sync.Mutex
	entries []LogEntry
	next    int
	max     int
}

// LogEntry is one line of the log.
type LogEntry struct {
	Time      time.Time
	Level     string
	Component string
	Message   string
	Error     string
}

// DefaultLogEntries is how many entries a console keeps.
const DefaultLogEntries = 200

const maxLogLine = 16 << 10

// NewLogRing returns a ring of n entries (DefaultLogEntries when n < 1).
func NewLogRing(n int) *LogRing {
	if n < 1 {
		n = DefaultLogEntries
	}
	return &LogRing{max: n}
}

// Write implements io.Writer; lines without a level are not kept.
func (l *LogRing) Write(p []byte) (int, error) { return len(p), nil }

// WriteLevel implements zerolog.LevelWriter: it keeps the warnings and worse.
func (l *LogRing) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	if level < zerolog.WarnLevel || level == zerolog.NoLevel {
		return len(p), nil
	}
	l.add(parseLogLine(level, p))
	return len(p), nil
}

// parseLogLine reads zerolog's JSON line; a line too long or not JSON is kept as its text.
func parseLogLine(level zerolog.Level, p []byte) LogEntry {
	e := LogEntry{Time: time.Now(), Level: level.String()}
	if len(p) > maxLogLine {
		e.Message = string(p[:maxLogLine]) + "..."
		return e
	}
	var f map[string]any
	if err := json.Unmarshal(p, &f); err != nil {
		e.Message = string(p)
		return e
	}
	str := func(k string) string {
		s, _ := f[k].(string)
		return s
	}
	if t, err := time.Parse(time.RFC3339, str(zerolog.TimestampFieldName)); err == nil {
		e.Time = t
	}
	e.Component, e.Message, e.Error = str("component"), str(zerolog.MessageFieldName), str(zerolog.ErrorFieldName)
	return e
}

func (l *LogRing) add(e LogEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) < l.max {
		l.entries = append(l.entries, e)
		return
	}
	l.entries[l.next] = e
	l.next = (l.next + 1) % l.max
}

// Entries returns the entries kept, newest first.
func (l *LogRing) Entries() []LogEntry {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]LogEntry, 0, len(l.entries))
	for i := len(l.entries) - 1; i >= 0; i-- {
		out = append(out, l.entries[(l.next+i)%len(l.entries)])
	}
	return out
}
