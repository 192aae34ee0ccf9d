package main

import (
	"context"
	"errors"
)

// exitInterrupted is the exit status of a command interrupted at a
// question (Ctrl-C, SIGTERM): 128 + SIGINT, as shells report it.
const exitInterrupted = 130

// interruptedError is a command interrupted at a [y/N] question: it did
// nothing. main prints it and exits 130.
type interruptedError struct{ msg string }

func (e *interruptedError) Error() string { return e.msg }

// asInterrupted returns err's interruption, if it is one.
func asInterrupted(err error) (*interruptedError, bool) {
	var i *interruptedError
	return i, errors.As(err, &i)
}

// ask writes question to stderr, so that stdout stays clean for scripts,
// and waits for the answer, or for ctx to be cancelled (Ctrl-C), whichever
// comes first: reading a terminal does not end on a signal, so waiting for
// the answer alone would sit there until Enter. On cancellation it returns
// an *interruptedError saying "interrupted: " and nothing (what was not
// done). A reader left waiting for the answer ends with the process.
func ask(ctx context.Context, env *environ, question, nothing string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, &interruptedError{msg: "interrupted: " + nothing}
	}
	_, _ = env.stderr.Write([]byte(question))
	answer := make(chan bool, 1)
	go func() { answer <- answeredYes(env.stdin) }()
	select {
	case yes := <-answer:
		return yes, nil
	case <-ctx.Done():
		_, _ = env.stderr.Write([]byte("\n")) // end the question's line
		return false, &interruptedError{msg: "interrupted: " + nothing}
	}
}
