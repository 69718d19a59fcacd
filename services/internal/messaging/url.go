package messaging

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// checkURL checks raw as the client reads it (amqp.ParseURI), so that a URL it cannot
// use is refused with the configuration rather than retried for ever. The error never
// holds the URL's password.
func checkURL(raw string) error {
	uri, err := amqp.ParseURI(raw)
	if err != nil {
		// net/url's errors quote the whole URL, password included: keep only what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			return errors.New(strings.Replace(err.Error(), ue.Error(), ue.Err.Error(), 1))
		}
		return err
	}
	if uri.Port < 1 || uri.Port > 65535 {
		return fmt.Errorf("port %d is not between 1 and 65535", uri.Port)
	}
	return nil
}

// redactURL returns raw with its password, if any, replaced by "xxxxx"; it also hides
// the password of a URL net/url cannot parse, or parses as an opaque one
// ("user:password@host" reads as scheme "user").
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Opaque == "" {
		return u.Redacted()
	}
	scheme, rest, found := strings.Cut(raw, "://")
	if !found {
		scheme, rest = "", raw
	} else {
		scheme += "://"
	}
	// The userinfo ends at the last "@": an unescaped "/" or "@" in a password is what
	// usually makes such a URL unparsable.
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return raw
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	if !hasPassword {
		return raw
	}
	return scheme + user + ":xxxxx" + rest[at:]
}

// redactedError is an error whose text has the broker URL's password hidden.
type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }

// redact hides the password of rawURL wherever err's text repeats the URL.
func redact(err error, rawURL string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if rawURL == "" || !strings.Contains(msg, rawURL) {
		return err
	}
	return redactedError{msg: strings.ReplaceAll(msg, rawURL, redactURL(rawURL)), err: err}
}
