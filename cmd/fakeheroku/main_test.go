package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestCommandLine: --help and --version answer without serving, a bad
// flag or an argument is a usage error (exit 2 in main).
func TestCommandLine(t *testing.T) {
	tests := []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"--help"}, false, "Examples:"},
		{[]string{"-h"}, false, "--private-restart-delay duration"},
		{[]string{"--version"}, false, "fakeheroku "},
		{[]string{"--no-such-flag"}, true, "unknown flag: --no-such-flag"},
		{[]string{"serve"}, true, `takes no arguments, got "serve"`},
		{[]string{"--capacity", "many"}, true, `invalid argument "many"`},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		c := newRootCmd(zerolog.Nop())
		c.SetOut(&out)
		c.SetErr(&out)
		c.SetArgs(tt.args)
		err := c.ExecuteContext(context.Background())
		var u *usageError
		if errors.As(err, &u) != tt.usage || !tt.usage && err != nil {
			t.Errorf("fakeheroku %v: err = %v, want a usage error: %v", tt.args, err, tt.usage)
		}
		got := out.String()
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tt.want) {
			t.Errorf("fakeheroku %v printed %q, want %q", tt.args, got, tt.want)
		}
	}
}
