package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/espnode/espnode/seg/pixel"
)

// TestVersionListsCodecs checks that `espnode version` names every pixel data decoder with its
// library and syntaxes, and says which this build lacks.
func TestVersionListsCodecs(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), &cliEnv{stdout: &stdout, stderr: &stderr}, []string{"version"}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, c := range pixel.Codecs() {
		var line string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, fmt.Sprintf("  %-17s ", c.Name)) {
				line = l
			}
		}
		if line == "" || !strings.Contains(line, c.Library) {
			t.Errorf("no line for %s (%s) in:\n%s", c.Name, c.Library, out)
			continue
		}
		for _, uid := range c.Syntaxes {
			if !strings.Contains(line, strings.TrimPrefix(uid, "1.2.840.10008.")) {
				t.Errorf("%s line lacks %s: %s", c.Name, uid, line)
			}
		}
		if strings.Contains(line, "not decoded by this build") == c.Compiled {
			t.Errorf("%s compiled %v, line says: %s", c.Name, c.Compiled, line)
		}
	}
}
