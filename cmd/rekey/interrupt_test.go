package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// startRekey starts the real binary (rekeyBinary) as `rekey args...` with
// exactly vars as its environment, off a terminal, and waits until ready
// holds of what it printed (stdout, stderr).
func startRekey(t *testing.T, vars map[string]string, ready func(stdout, stderr string) bool, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, rekeyBinary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); !ready(stdout.String(), stderr.String()); {
		if time.Now().After(deadline) {
			t.Fatalf("rekey %s is not ready after 30s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stdout, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd, stdout, stderr
}

// signalAndWait sends sig to cmd and returns its exit status.
func signalAndWait(t *testing.T, cmd *exec.Cmd, sig os.Signal) int {
	t.Helper()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(err)
	case <-time.After(30 * time.Second):
		t.Fatalf("rekey %s still runs 30s after %s", strings.Join(cmd.Args[1:], " "), sig)
		return 0
	}
}

// rekeyLines are the lines of stderr that rekey itself wrote for an
// operator ("rekey: ..."), leaving log lines out.
func rekeyLines(stderr string) []string {
	var out []string
	for line := range strings.Lines(stderr) {
		if strings.HasPrefix(line, "rekey: ") {
			out = append(out, strings.TrimSuffix(line, "\n"))
		}
	}
	return out
}

// TestCtrlCExits130 sends SIGINT to the real binary while it waits, in
// commands that know what they did and in a long-running process, and
// checks the exit status 130 and the one line on stderr that says what was
// interrupted; SIGTERM still ends a long-running process with 0.
func TestCtrlCExits130(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 3)
	printedBatch := func(stdout, _ string) bool { return strings.Contains(stdout, "batch bat_") }

	t.Run("rotate --wait", func(t *testing.T) {
		cmd, stdout, stderr := startRekey(t, c.vars(), printedBatch, "rotate", ids[0], ids[1], "--wait", "--interval", "100ms")
		code := signalAndWait(t, cmd, syscall.SIGINT)
		id := batchID(t, stdout.String())
		want := "rekey: interrupted: batch " + id + " was enqueued and keeps running without this command " +
			"(0 of 2 rotations finished so far); follow it with 'rekey batches show " + id + " --wait'"
		if lines := rekeyLines(stderr.String()); code != 130 || len(lines) != 1 || lines[0] != want {
			t.Errorf("exit %d, stderr:\n%s\nwant exit 130 and the one line %q", code, stderr, want)
		}
		if c.pending(t, "default") != 2 {
			t.Errorf("the interrupted wait took its rotations back: %d pending, want 2", c.pending(t, "default"))
		}
	})
	t.Run("rotate --wait, SIGTERM", func(t *testing.T) {
		cmd, stdout, stderr := startRekey(t, c.vars(), printedBatch, "rotate", ids[0], "--wait", "--interval", "100ms")
		code := signalAndWait(t, cmd, syscall.SIGTERM)
		id := batchID(t, stdout.String())
		want := "rekey: stopped before it finished: batch " + id + " was enqueued and keeps running without this command"
		if lines := rekeyLines(stderr.String()); code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], want) ||
			strings.Contains(lines[0], "context") {
			t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and one line starting %q", code, stderr, want)
		}
	})
	t.Run("batches show --wait", func(t *testing.T) {
		if err := c.run(t, "rotate", ids[2]); err != nil {
			t.Fatal(err)
		}
		id := batchID(t, c.stdout.String())
		watching := func(_, stderr string) bool { return strings.Contains(stderr, "batch "+id+": ") }
		cmd, _, stderr := startRekey(t, c.vars(), watching, "batches", "show", id, "--wait", "--interval", "100ms")
		code := signalAndWait(t, cmd, syscall.SIGINT)
		want := "rekey: interrupted: batch " + id + " was enqueued and keeps running without this command " +
			"(0 of 1 rotations finished so far); follow it with 'rekey batches show " + id + " --wait'"
		if lines := rekeyLines(stderr.String()); code != 130 || len(lines) != 1 || lines[0] != want {
			t.Errorf("exit %d, stderr:\n%s\nwant exit 130 and the one line %q", code, stderr, want)
		}
	})
	// rekey dev fails many things at once when stopped: every sample
	// instance's provisioning, every enqueue of the batch. Those failures
	// are the interruption's, and it says so in its one line.
	for _, at := range []string{"rekey dev: fake Heroku at", "rekey dev: batch bat_"} {
		t.Run("dev --once, at "+at, func(t *testing.T) {
			cmd, _, stderr := startRekey(t, map[string]string{}, func(_, stderr string) bool { return strings.Contains(stderr, at) },
				"dev", "--once", "--instances", "400")
			code := signalAndWait(t, cmd, syscall.SIGINT)
			want := "rekey: interrupted: rekey dev stopped"
			if lines := rekeyLines(stderr.String()); code != 130 || len(lines) != 1 || lines[0] != want {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 130 and the one line %q", code, stderr, want)
			}
		})
	}
	indexed := func(_, stderr string) bool { return strings.Contains(stderr, "schedule_indexed") }
	t.Run("scheduler", func(t *testing.T) {
		cmd, _, stderr := startRekey(t, c.vars(), indexed, "scheduler")
		code := signalAndWait(t, cmd, syscall.SIGINT)
		want := "rekey: interrupted: rekey scheduler stopped"
		if lines := rekeyLines(stderr.String()); code != 130 || len(lines) != 1 || lines[0] != want {
			t.Errorf("exit %d, stderr:\n%s\nwant exit 130 and the one line %q", code, stderr, want)
		}
	})
	t.Run("scheduler, SIGTERM", func(t *testing.T) {
		cmd, _, stderr := startRekey(t, c.vars(), indexed, "scheduler")
		if code := signalAndWait(t, cmd, syscall.SIGTERM); code != 0 || len(rekeyLines(stderr.String())) != 0 {
			t.Errorf("exit %d, stderr:\n%s\nwant exit 0 and no rekey: line, as Heroku's SIGTERM always ended it", code, stderr)
		}
	})
}

// A Ctrl-C that comes as a one-shot command ends without error leaves its
// success alone (exit 0): it did all it had to. A command that runs until
// it is stopped (worker, web, scheduler, dev) stopped cleanly by Ctrl-C
// was interrupted (130), as was any command that returned an error.
func TestCtrlCAfterACommandFinished(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(&signalError{sig: os.Interrupt})
	oneShot, service := &cobra.Command{Use: "release"}, &cobra.Command{Use: "worker", Annotations: serves}
	if err := onCtrlC(ctx, oneShot, "rekey holds release", nil); err != nil {
		t.Errorf("a finished one-shot command: %v, want no error", err)
	}
	if _, ok := asInterrupted(onCtrlC(ctx, service, "rekey worker", nil)); !ok {
		t.Error("a service stopped by Ctrl-C is not reported as interrupted")
	}
	if _, ok := asInterrupted(onCtrlC(ctx, oneShot, "rekey holds release", context.Canceled)); !ok {
		t.Error("a one-shot command that Ctrl-C stopped is not reported as interrupted")
	}
	if err := onCtrlC(context.Background(), service, "rekey worker", nil); err != nil {
		t.Errorf("without Ctrl-C: %v, want no error", err)
	}
}

// Ctrl-C can land after `rekey rotate --wait` printed its batch and before
// its watch first looked at it: the watch's look fails on the ended
// context. The interruption still names the batch, how far it got and how
// to follow it, rather than "rekey rotate stopped".
func TestAWatchStoppedAtItsFirstLookNamesTheBatch(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 2)
	if err := c.run(t, "rotate", ids[0], ids[1]); err != nil {
		t.Fatal(err)
	}
	id := batchID(t, c.stdout.String())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env := &environ{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	_, err := watchBatch(ctx, env, c.st, id, 50*time.Millisecond, true, nil)
	var s *stoppedError
	want := "batch " + id + " was enqueued and keeps running without this command (0 of 2 rotations finished so far)"
	if !errors.As(err, &s) || !strings.HasPrefix(s.done, want) {
		t.Errorf("watch stopped at its first look: %v; want it to say %q", err, want)
	}
}

// TestCtrlCEndsAReadOfStdin: `rekey rotate --from -` and `rekey instances
// import -` typed without a pipe read the terminal, whose read does not end
// on a signal: Ctrl-C waited for Enter or ^D. Fed by a pipe, they read it
// until the producer closed it, so while a producer that outlives the
// signal (another process group's, or a process given `kill -INT` alone)
// held it open, Ctrl-C did nothing and only a second one ended rekey. The
// first now ends the command at once, interrupted, with nothing enqueued
// or registered after it.
func TestCtrlCEndsAReadOfStdin(t *testing.T) {
	for _, terminal := range []bool{true, false} {
		for _, args := range [][]string{{"rotate", "--from", "-", "--confirm"}, {"instances", "import", "-"}} {
			t.Run(fmt.Sprintf("%s/terminal=%v", args[0], terminal), func(t *testing.T) {
				c := newCLI(t)
				stdin, writer := io.Pipe() // nobody types, or a producer that writes nothing more and stays
				defer writer.Close()
				env := c.env()
				env.stdin, env.terminal = stdin, terminal
				ctx, cancel := context.WithCancelCause(context.Background())
				time.AfterFunc(200*time.Millisecond, func() { cancel(&signalError{sig: os.Interrupt}) })
				done := make(chan error, 1)
				go func() { done <- runCommand(ctx, env, args[0], args[1:]...) }()
				select {
				case err := <-done:
					if _, ok := asInterrupted(err); !ok {
						t.Errorf("%v: %v, want an interruption", args, err)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%v still reads stdin 5s after Ctrl-C", args)
				}
			})
		}
	}
}
