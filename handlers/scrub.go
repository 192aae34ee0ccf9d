package handlers

import (
	"github.com/rekeyhq/rekey/internal/secret"
)

// Length caps of the error text the handlers keep. Text from outside
// (Heroku's or an issuer's answer) is bounded so that no party can fill an
// audit stream or a dashboard, and so that what is kept is a sentence, not
// a dump.
const (
	// maxStoredText caps a failure's cause, a "retrying" event's detail and
	// so an instance's last error.
	maxStoredText = 300
	// maxTaskErrorText caps the error returned to asynq, which becomes the
	// task's last error in /monitoring and the worker's log line: a stored
	// cause plus the operation around it.
	maxTaskErrorText = 512
)

// scrubbedError is an error whose text was scrubbed of every secret the
// handler knew and capped. It keeps its cause for errors.Is and errors.As
// (asynq.SkipRetry, RetryLaterError), never for printing.
type scrubbedError struct {
	text  string
	cause error
}

func (e *scrubbedError) Error() string { return e.text }
func (e *scrubbedError) Unwrap() error { return e.cause }

// scrubText is the one way error text reaches anything the handlers keep:
// every known secret removed (secret.Scrub), then capped at limit bytes.
func scrubText(text string, limit int, known []secret.String) string {
	return secret.Clip(secret.Scrub(text, known...), limit)
}

// scrubError returns err with its text scrubbed of known and capped, for
// returning to asynq; nil stays nil.
func scrubError(err error, known []secret.String) error {
	if err == nil {
		return nil
	}
	return &scrubbedError{text: scrubText(err.Error(), maxTaskErrorText, known), cause: err}
}
