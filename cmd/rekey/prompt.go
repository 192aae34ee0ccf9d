package main

import "context"

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
