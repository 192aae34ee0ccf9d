package issuer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// Failure codes rekey gives an Error when the issuer's answer carries none
// of its own, or when no answer arrived. They never change once released:
// batch reports and dashboards group failures by them.
const (
	CodeRedirect       = "redirect"                 // a 3xx answer; rekey never follows one
	CodeUnreadable     = "unreadable_answer"        // the body could not be read, or passed maxResponseBytes
	CodeMalformed      = "malformed_response"       // a 2xx mint answer without credential_id or config
	CodeIDNotString    = "credential_id_not_string" // a 2xx mint answer whose credential_id is a number
	CodeTimeout        = "timeout"                  // the call's own timeout or the caller's deadline
	CodeCanceled       = "canceled"                 // the caller gave up
	CodeRefused        = "connection_refused"       // nothing listens at REKEY_ISSUER_URL
	CodeReset          = "connection_reset"         // the connection broke mid-call
	CodeDNS            = "dns_error"                // the issuer's host name did not resolve
	CodeTLS            = "tls_error"                // the TLS handshake or the certificate failed
	CodeTransport      = "transport_error"          // any other failure before an answer
	CodeRequest        = "request_error"            // rekey could not build the request
	CodeNotFoundPage   = "not_found_page"           // a 404 that came as a page, on DELETE or to a verify that must answer: not the issuer's word
	CodePageAnswer     = "page_answer"              // a 2xx or 4xx page to DELETE, a 4xx page to a mint, or a 2xx page to a verify the issuer must answer: not the issuer's word
	CodeStillWorks     = "still_works"              // a 404 or a page to DELETE while the issuer's verify says the credential works
	CodeErrorAnswer    = "error_answer"             // a 2xx to DELETE, verify or usage whose JSON body says it failed (an error, "ok": false), or to DELETE a text naming a failure
	codeStatusFallback = "status_"                  // prefix for a status Go has no name for
)

// codePattern is what an issuer's own code must look like to be kept:
// lowercase letters and underscores, at most 40 bytes. Digits are left out
// on purpose: a token, a password or a hex key echoed in an error field
// then never passes for a code.
var codePattern = regexp.MustCompile(`^[a-z][a-z_]{0,39}$`)

// reservedCodes are rekey's own codes for failures the issuer cannot
// report: an issuer's answer naming one is not taken at its word, since
// rekey decides retries and errors.Is by them.
var reservedCodes = map[string]bool{
	CodeRedirect: true, CodeUnreadable: true, CodeMalformed: true, CodeIDNotString: true, CodeTimeout: true, CodeCanceled: true,
	CodeRefused: true, CodeReset: true, CodeDNS: true, CodeTLS: true, CodeTransport: true, CodeRequest: true,
	CodeNotFoundPage: true, CodePageAnswer: true, CodeStillWorks: true, CodeErrorAnswer: true,
}

// ValidCode reports whether s may be kept as an issuer's failure code: it
// matches codePattern and is not one of rekey's own.
func ValidCode(s string) bool { return codePattern.MatchString(s) && !reservedCodes[s] }

// StatusCode is rekey's code for an HTTP status: "redirect" for any 3xx,
// Go's status text in snake_case otherwise ("service_unavailable"), or
// "status_NNN" for a status without a name.
func StatusCode(status int) string {
	if status >= 300 && status <= 399 {
		return CodeRedirect
	}
	text := http.StatusText(status)
	if text == "" {
		return codeStatusFallback + strconv.Itoa(status)
	}
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r)
		case !strings.HasSuffix(b.String(), "_"):
			b.WriteByte('_')
		}
	}
	return strings.Trim(b.String(), "_")
}

// transportCode reduces a failure that got no answer to its kind. The
// error's own text is dropped: it names hosts, addresses and sometimes the
// URL, whose path may hold a secret of the partner's.
func transportCode(err error) string {
	var netErr net.Error
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var authErr x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recErr tls.RecordHeaderError
	switch {
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return CodeTimeout
	case errors.As(err, &dnsErr):
		return CodeDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return CodeRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return CodeReset
	case errors.As(err, &certErr), errors.As(err, &authErr), errors.As(err, &hostErr), errors.As(err, &recErr):
		return CodeTLS
	}
	return CodeTransport
}
