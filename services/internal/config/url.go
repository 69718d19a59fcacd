package config

import (
	"errors"
	"net/url"

	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
)

// ParseServiceURL parses the base URL of a peer service, such as http://user:8080: an
// absolute http or https URL with a host and no query or fragment, which a request path is
// joined to. Anything else (ftp://…, user:8080, a query that each call would carry) is
// refused, so that a wrong setting stops the service at start instead of failing every
// call to the peer.
//
// The error never holds the URL's password: a caller quotes the URL with
// storeuri.RedactURL.
func ParseServiceURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		// net/url's error quotes the whole URL, password included: keep what went wrong, and
		// hide what of the password it took for a host or a port.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, storeuri.RedactError(err, s)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("want an absolute http or https URL")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, errors.New("want no query or fragment")
	}
	return u, nil
}
