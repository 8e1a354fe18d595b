package main

import (
	"testing"
	"time"

	"github.com/espnode/espnode/config"
)

// TestRescueAfterOnSharedQueues: pipeline.rescue_after reaches River on a shared queue only; on
// SQLite River's own default stays (0 here).
func TestRescueAfterOnSharedQueues(t *testing.T) {
	cfg := config.Default()
	cfg.Pipeline.RescueAfter = 7 * time.Minute
	if got := pipelineConfig(cfg.Pipeline, cfg.Model, true).RescueAfter; got != 7*time.Minute {
		t.Errorf("shared queue: rescue after %s, want 7m", got)
	}
	if got := pipelineConfig(cfg.Pipeline, cfg.Model, false).RescueAfter; got != 0 {
		t.Errorf("SQLite: rescue after %s, want River's default (0)", got)
	}
}
