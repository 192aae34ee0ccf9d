package main

import (
	"fmt"
	"io"
	"strings"
)

// printError writes err for an operator: one "rekey: " line per sentence,
// so a configuration error listing several variables (config.Load joins
// them, one per line) reads as a list to fix in one go.
func printError(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		if line != "" {
			fmt.Fprintln(w, "rekey:", line)
		}
	}
}
