package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// exitInterrupted is the exit status of a command that Ctrl-C (SIGINT)
// stopped, and of one interrupted at a [y/N] question: 128 + SIGINT, as
// shells, git and kubectl report it.
const exitInterrupted = 130

// interruptedError is a command that an interruption stopped. Its message
// says so and what was or was not done. main prints it and exits 130.
type interruptedError struct{ msg string }

func (e *interruptedError) Error() string { return e.msg }

// asInterrupted returns err's interruption, if it is one.
func asInterrupted(err error) (*interruptedError, bool) {
	var i *interruptedError
	return i, errors.As(err, &i)
}

// stoppedError is a command that its context's end stopped after it did
// what done says ("batch bat_1 was enqueued and keeps running ..."). On
// Ctrl-C, run makes it an *interruptedError that says done; on SIGTERM it
// stays an error like any other.
type stoppedError struct {
	done string
	err  error
}

// Error says what was done, not the context's error: "context canceled"
// tells an operator nothing a SIGTERM did not.
func (e *stoppedError) Error() string { return "stopped before it finished: " + e.done }
func (e *stoppedError) Unwrap() error { return e.err }

// signalError is the cause of main's context once a signal ended it.
type signalError struct{ sig os.Signal }

func (e *signalError) Error() string { return e.sig.String() + " signal received" }

// notifyContext is signal.NotifyContext, except that the context's cause
// is a *signalError naming the signal, so run tells Ctrl-C from SIGTERM
// without reading error text. The first signal ends the context, and a
// process then drains (a worker's running tasks, the web's requests in
// flight) before it exits. A second signal, before stop, exits at once:
// one line on stderr says so, and exit gets 128 + the signal's number
// (130 for SIGINT, 143 for SIGTERM), for an operator who will not wait
// for the drain. The same signal again within echoWindow of the first is
// the first delivered twice, not a second request (echo).
func notifyContext(parent context.Context, stderr io.Writer, exit func(int), sigs ...os.Signal) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	stopped := make(chan struct{})
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	go func() {
		var first os.Signal
		select {
		case first = <-ch:
			cancel(&signalError{sig: first})
		case <-ctx.Done():
			return
		}
		at := time.Now()
		for {
			select {
			case s := <-ch:
				if echo(first, at, s, time.Now()) {
					continue
				}
				fmt.Fprintf(stderr, "rekey: %s again: exiting at once, without waiting for the drain\n", signalName(s))
				exit(signalStatus(s))
				return
			case <-stopped:
				return
			}
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(ch)
			close(stopped)
			cancel(context.Canceled)
		})
	}
}

// echoWindow is how soon after a first signal the same signal is taken for
// a second delivery of it. GNU timeout, and other supervisors, send their
// signal to the process and then to its whole process group, so a process
// that leads its group receives it twice within microseconds; an operator
// pressing Ctrl-C again, or a second kill, comes far later than this.
const echoWindow = 100 * time.Millisecond

// echo reports whether s, received at now, is the first signal, received
// at firstAt, delivered twice.
func echo(first os.Signal, firstAt time.Time, s os.Signal, now time.Time) bool {
	return s == first && now.Sub(firstAt) < echoWindow
}

// signalName is sig as an operator types it to kill: SIGINT, SIGTERM.
func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return sig.String()
}

// signalStatus is the exit status of a process that sig ended: 128 + its
// number, as shells report it.
func signalStatus(sig os.Signal) int {
	if n, ok := sig.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return exitInterrupted
}

// ctrlC reports whether ctx ended because the process received SIGINT.
func ctrlC(ctx context.Context) bool {
	var s *signalError
	return errors.As(context.Cause(ctx), &s) && s.sig == os.Interrupt
}

// servesAnnotation marks the commands that run until they are stopped
// (worker, web, scheduler, dev): for them a clean stop on Ctrl-C is still
// an interruption (exit 130), whereas a one-shot command that returned no
// error had finished.
const servesAnnotation = "rekey/serves"

// serves is the Annotations of a command that runs until it is stopped.
var serves = map[string]string{servesAnnotation: "true"}

// onCtrlC is the outcome of command path once Ctrl-C ended ctx: whatever
// the command returned, an *interruptedError (exit 130) with one line
// saying what was interrupted, the command's own when it said what it had
// done (a *stoppedError), or one naming the command. An error that is not
// the interruption's is kept before that line. Without Ctrl-C, err as is.
func onCtrlC(ctx context.Context, cmd *cobra.Command, path string, err error) error {
	if !ctrlC(ctx) {
		return err
	}
	if err == nil && (cmd == nil || cmd.Annotations[servesAnnotation] == "") {
		// A command that did all it had to, Ctrl-C coming as it ended.
		return nil
	}
	if _, ok := asInterrupted(err); ok {
		return err
	}
	if _, ok := asUsage(err); ok {
		return err
	}
	var s *stoppedError
	if errors.As(err, &s) {
		return &interruptedError{msg: "interrupted: " + s.done}
	}
	i := &interruptedError{msg: "interrupted: " + path + " stopped"}
	if err != nil && !errors.Is(err, context.Canceled) {
		return errors.Join(err, i)
	}
	return i
}
