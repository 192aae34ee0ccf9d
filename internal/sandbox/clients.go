package sandbox

import (
	"net/url"
	"slices"
	"strings"
)

// NamedRedisURL is redisURL with client_name=name added to its query, so
// that every connection a rekey process opens with it shows as name in
// CLIENT LIST. A URL that does not parse is returned as it is.
func NamedRedisURL(redisURL, name string) string {
	u, err := url.Parse(redisURL)
	if err != nil {
		return redisURL
	}
	q := u.Query()
	q.Set("client_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// ClientsNamed counts the connections named name in the text of CLIENT
// LIST.
func ClientsNamed(clientList, name string) int {
	n := 0
	for line := range strings.Lines(clientList) {
		if slices.Contains(strings.Fields(line), "name="+name) {
			n++
		}
	}
	return n
}
