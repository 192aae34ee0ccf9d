package web

// Route is one entry of the route table as the tests see it.
type Route struct {
	Pattern string
	Access  string
}

// Routes returns the route table New serves, so the security tests walk
// every route there is.
func Routes() []Route {
	s := &server{}
	var out []Route
	for _, rt := range s.routes() {
		out = append(out, Route{Pattern: rt.pattern, Access: rt.access.String()})
	}
	return out
}

// FormatPayload is the asynqmon payload formatter.
var FormatPayload = formatPayload
