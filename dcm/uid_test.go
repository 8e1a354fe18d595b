package dcm

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckUID(t *testing.T) {
	tests := []struct {
		uid string
		ok  bool
	}{
		{"1.2.840.10008.1.2.1", true},
		{"0", true},
		{"1.0.2", true},
		{"1.2.840.10008.5.1.4.1.1.2", true},
		{strings.Repeat("1", 64), true},
		{"1." + strings.Repeat("2", 62), true},
		{"", false},
		{strings.Repeat("1", 65), false},
		{"1.2.03", false},
		{"00", false},
		{"1..2", false},
		{".1.2", false},
		{"1.2.", false},
		{"../../etc", false},
		{"1.2/3", false},
		{"1.2.3 ", false},
		{"1.2.3\x00", false},
		{"1.a", false},
		{"-1.2", false},
	}
	for _, tt := range tests {
		err := CheckUID(tt.uid)
		if tt.ok && err != nil {
			t.Errorf("CheckUID(%q) = %v, want nil", tt.uid, err)
		}
		if !tt.ok && !errors.Is(err, ErrBadUID) {
			t.Errorf("CheckUID(%q) = %v, want ErrBadUID", tt.uid, err)
		}
	}
}

func TestCheckAE(t *testing.T) {
	tests := []struct {
		ae string
		ok bool
	}{
		{"ESPNODE", true},
		{"A", true},
		{"ANY-SCP_1 x", true},
		{" PACS ", true},
		{strings.Repeat("A", 16), true},
		{strings.Repeat("A", 17), false},
		{"", false},
		{"    ", false},
		{`A\B`, false},
		{"A\tB", false},
		{"A\x00", false},
		{"É", false},
	}
	for _, tt := range tests {
		err := CheckAE(tt.ae)
		if tt.ok && err != nil {
			t.Errorf("CheckAE(%q) = %v, want nil", tt.ae, err)
		}
		if !tt.ok && !errors.Is(err, ErrBadAE) {
			t.Errorf("CheckAE(%q) = %v, want ErrBadAE", tt.ae, err)
		}
	}
}
