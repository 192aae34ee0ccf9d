package ratelimit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
)

func TestNewValidatesParams(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	tests := []struct {
		name    string
		p       ratelimit.Params
		wantErr string // empty: valid
	}{
		{"defaults", ratelimit.Params{PerHour: 3600}, ""},
		{"no budget", ratelimit.Params{}, "PerHour must be a positive"},
		{"negative budget", ratelimit.Params{PerHour: -1}, "PerHour must be a positive"},
		{"burst within reserve", ratelimit.Params{PerHour: 3600, Burst: 2, Reserve: 2}, "must exceed Reserve"},
		{"no reserve", ratelimit.Params{PerHour: 3600, Burst: 1, Reserve: -1}, ""},
		{"unknown scope", ratelimit.Params{PerHour: 3600, Scope: 7}, "unknown Scope(7)"},
		{"negative wait", ratelimit.Params{PerHour: 3600, MaxWait: -time.Second}, "must not be negative"},
		{"cap below backoff", ratelimit.Params{PerHour: 3600, Backoff: time.Minute, MaxBackoff: time.Second}, "shorter than Backoff"},
		{"cap alone", ratelimit.Params{PerHour: 3600, MaxBackoff: time.Second}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := ratelimit.New(r.Client, tt.p)
			if err == nil {
				defer l.Close()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New: got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDefaultsAndEstimates(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	l, err := ratelimit.New(r.Client, ratelimit.Params{PerHour: 3600})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := l.Params()
	tests := []struct {
		name      string
		got, want any
	}{
		{"Burst", p.Burst, 10},
		{"Reserve", p.Reserve, 2},
		{"MaxWait", p.MaxWait, 30 * time.Second},
		{"LowWater", p.LowWater, 100},
		{"Backoff", p.Backoff, 2 * time.Second},
		{"MaxBackoff", p.MaxBackoff, time.Minute},
		{"Interval", l.Interval(), time.Second},
		{"PerSecond", l.PerSecond(), 1.0},
		{"Estimate within the burst", l.Estimate(8), time.Duration(0)},
		{"Estimate beyond it", l.Estimate(68), time.Minute},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestParseScope(t *testing.T) {
	t.Parallel()
	for _, s := range []ratelimit.Scope{ratelimit.ScopeAccount, ratelimit.ScopeInstance} {
		if got, err := ratelimit.ParseScope(s.String()); err != nil || got != s {
			t.Errorf("ParseScope(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ratelimit.ParseScope("global"); err == nil {
		t.Error("ParseScope accepted \"global\"")
	}
}
