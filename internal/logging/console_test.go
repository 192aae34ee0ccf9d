package logging_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/logging"
)

// asynq writes the id of a task it archives into its message ("Retry
// exhausted for task id=%s"), and another app's task may carry any id
// (asynq.TaskID): on the terminal of `rekey dev` and the CLI, such a
// message must not clear or retitle the screen nor forge a line of
// rekey's log.
func TestConsoleLinesShowControlCharactersOfAMessageAsEscapes(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	log := logging.New(logging.Options{Service: "dev", Console: true, NoColor: true, Out: &out})
	forged := "rotate:x\x1b]0;owned\x07\x1b[2J\n12:00:00.000 INF rotated instance_id=victim\u202e"
	logging.Asynq{L: log}.Warn("Retry exhausted for task id=", forged)

	line := out.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Errorf("one message became %d lines: %q", strings.Count(line, "\n"), line)
	}
	for _, bad := range []string{"\x1b", "\x07", "\u202e"} {
		if strings.Contains(line, bad) {
			t.Errorf("console line carries %q as it is: %q", bad, line)
		}
	}
	if !strings.Contains(line, `rotate:x\x1b]0;owned\a`) {
		t.Errorf("console line does not show the id escaped: %q", line)
	}
}

// JSON lines already escape what a message holds; they keep it exact.
func TestJSONLinesKeepAMessageAsWritten(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	log := logging.New(logging.Options{Service: "worker", Out: &out})
	logging.Asynq{L: log}.Warn("task id=a\nb")
	if !strings.Contains(out.String(), `"message":"task id=a\nb"`) {
		t.Errorf("JSON line = %q", out.String())
	}
}
