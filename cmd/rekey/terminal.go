package main

import (
	"os"
)

// isTerminal reports whether f is a terminal: a character device other
// than the null device (cron and CI often give /dev/null as stdin, which
// no person answers). It asks the file system only, as the standard
// library allows, which is enough to tell a person from a pipe or a file.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	fi, err := file.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}
