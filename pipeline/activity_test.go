package pipeline

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestActivityPerMinute(t *testing.T) {
	base := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		received []time.Duration // after base
		now      time.Duration
		n        int
		want     []int
	}{
		{"empty", nil, 0, 3, []int{0, 0, 0}},
		{"this minute", []time.Duration{time.Second, 2 * time.Second}, 30 * time.Second, 2, []int{0, 2}},
		{"spread", []time.Duration{0, time.Minute, time.Minute + time.Second, 3 * time.Minute}, 3 * time.Minute, 4, []int{1, 2, 0, 1}},
		// A slot reused an hour later holds the new minute's count only.
		{"wrapped", []time.Duration{0, time.Hour}, time.Hour, 2, []int{0, 1}},
		{"older than the window", []time.Duration{0}, 2 * time.Hour, 60, make([]int, 60)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := NewActivity()
			for _, d := range tc.received {
				a.Received(base.Add(d))
			}
			if got := a.PerMinute(base.Add(tc.now), tc.n); !slices.Equal(got, tc.want) {
				t.Errorf("PerMinute = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestActivitySEGRing(t *testing.T) {
	a := NewActivity()
	for i := range activitySEGs + 3 {
		a.Segmented(SEGRecord{Frames: i})
	}
	got := a.SEGs()
	if len(got) != activitySEGs || got[0].Frames != 3 || got[len(got)-1].Frames != activitySEGs+2 {
		t.Fatalf("ring holds %d records, first %d, last %d; want %d from 3 to %d",
			len(got), got[0].Frames, got[len(got)-1].Frames, activitySEGs, activitySEGs+2)
	}
}

func TestActivityDestinations(t *testing.T) {
	a := NewActivity()
	t0 := time.Unix(1000, 0)
	a.Delivered("B@h:2", t0, nil)
	a.Delivered("A@h:1", t0, errors.New(strings.Repeat("x", 5000)))
	a.Delivered("A@h:1", t0.Add(time.Second), nil)
	got := a.Destinations()
	if len(got) != 2 || got[0].Destination != "A@h:1" || got[1].Destination != "B@h:2" {
		t.Fatalf("destinations %+v", got)
	}
	if !got[0].LastSuccess.Equal(t0.Add(time.Second)) || !got[0].LastErrorAt.Equal(t0) || len(got[0].LastError) > maxErrorText+3 {
		t.Errorf("A: %+v", got[0])
	}
	if !got[1].LastErrorAt.IsZero() || !got[1].LastSuccess.Equal(t0) {
		t.Errorf("B: %+v", got[1])
	}
}

func TestForegroundFraction(t *testing.T) {
	for _, tc := range []struct {
		fg     int
		pixels int64
		want   float64
	}{{0, 0, 0}, {5, 10, .5}, {20, 10, 1}, {0, 10, 0}} {
		if got := foregroundFraction(tc.fg, tc.pixels); got != tc.want {
			t.Errorf("foregroundFraction(%d, %d) = %v, want %v", tc.fg, tc.pixels, got, tc.want)
		}
	}
}
