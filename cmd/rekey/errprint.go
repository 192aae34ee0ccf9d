package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/rekeyhq/rekey/internal/printable"
)

// printError writes err for an operator: one "rekey: " line per sentence,
// so a configuration error listing several variables (config.Load joins
// them, one per line) reads as a list to fix in one go. Each line passes
// printable.Text, since an error may quote outside text (Heroku's or the
// issuer's message, a state or a name read from Redis).
func printError(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		if line != "" {
			fmt.Fprintln(w, "rekey:", printable.Text(line))
		}
	}
}
