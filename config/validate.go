package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/espnode/espnode/dcm"
)

// Duplicate policies for store.duplicates.
const (
	DuplicatesOverwrite = "overwrite"
	DuplicatesKeep      = "keep"
	DuplicatesReject    = "reject"
)

// Log formats for log.format.
const (
	LogFormatAuto    = "auto"
	LogFormatJSON    = "json"
	LogFormatConsole = "console"
)

// LogLevels are the accepted values of log.level, least severe first.
var logLevels = []string{"trace", "debug", "info", "warn", "error"}

// Validate returns every problem in c joined into one error (nil if none),
// each starting with the key path it concerns, e.g.
// "dicom.port: must be 1..65535, got 0".
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}

	checkAE := func(key, ae string) {
		if dcm.CheckAE(ae) != nil {
			bad(key, "at most 16 characters of the default repertoire, no backslash or control characters, not only spaces, got %q", ae)
		}
	}
	checkPort := func(key string, port int) {
		if port < 1 || port > 65535 {
			bad(key, "must be 1..65535, got %d", port)
		}
	}
	checkDuration := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "must be a positive duration (e.g. \"30s\"), got %s", d)
		}
	}

	checkAE("ae_title", c.AETitle)
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir", "must not be empty")
	}

	d := &c.DICOM
	if strings.ContainsAny(d.Host, " \t\r\n") {
		bad("dicom.host", "must be an IP address or host name, got %q", d.Host)
	}
	checkPort("dicom.port", d.Port)
	for i, cl := range d.AllowedCallers {
		checkAE(fmt.Sprintf("dicom.allowed_callers[%d].ae_title", i), cl.AETitle)
		if strings.ContainsAny(cl.Host, " \t\r\n") {
			bad(fmt.Sprintf("dicom.allowed_callers[%d].host", i), "must be empty, an IP address or a host name, got %q", cl.Host)
		}
	}
	if d.MaxAssociations < 1 {
		bad("dicom.max_associations", "must be at least 1, got %d", d.MaxAssociations)
	}
	if d.MaxPDULength < MinPDULength || d.MaxPDULength > MaxPDULength {
		bad("dicom.max_pdu_length", "must be %d..%d, got %d", MinPDULength, MaxPDULength, d.MaxPDULength)
	}
	if len(d.TransferSyntaxes) == 0 {
		bad("dicom.transfer_syntaxes", "must list at least one transfer syntax UID")
	}
	seen := make(map[string]bool)
	for i, ts := range d.TransferSyntaxes {
		key := fmt.Sprintf("dicom.transfer_syntaxes[%d]", i)
		if err := dcm.CheckUID(ts); err != nil {
			bad(key, "%v", err)
		} else if seen[ts] {
			bad(key, "%s is listed twice", ts)
		}
		seen[ts] = true
	}
	checkDuration("dicom.timeouts.artim", d.Timeouts.ARTIM)
	checkDuration("dicom.timeouts.idle", d.Timeouts.Idle)
	checkDuration("dicom.timeouts.dimse", d.Timeouts.DIMSE)

	switch c.Store.Duplicates {
	case DuplicatesOverwrite, DuplicatesKeep, DuplicatesReject:
	default:
		bad("store.duplicates", "must be overwrite, keep or reject, got %q", c.Store.Duplicates)
	}

	peers := make(map[string]int)
	for i, p := range c.Peers {
		key := fmt.Sprintf("peers[%d]", i)
		checkAE(key+".ae_title", p.AETitle)
		if j, dup := peers[strings.TrimSpace(p.AETitle)]; dup {
			bad(key+".ae_title", "%q is already peers[%d]", p.AETitle, j)
		} else {
			peers[strings.TrimSpace(p.AETitle)] = i
		}
		if strings.TrimSpace(p.Host) == "" || strings.ContainsAny(p.Host, " \t\r\n") {
			bad(key+".host", "must be an IP address or host name, got %q", p.Host)
		}
		checkPort(key+".port", p.Port)
	}

	if !slices.Contains(logLevels, c.Log.Level) {
		bad("log.level", "must be one of %s, got %q", strings.Join(logLevels, ", "), c.Log.Level)
	}
	switch c.Log.Format {
	case LogFormatAuto, LogFormatJSON, LogFormatConsole:
	default:
		bad("log.format", "must be auto, json or console, got %q", c.Log.Format)
	}
	return errors.Join(errs...)
}
