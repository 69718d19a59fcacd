package config

import (
	"net/url"
	"strings"
)

// RedactURL returns raw with its password, if any, replaced by "xxxxx", for logs and
// errors. It also hides the password of a URL net/url cannot parse, or parses as an
// opaque one ("user:password@host" reads as scheme "user"), since an unescaped "/" or
// "@" in a password is what usually makes a connection URL unparsable.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Opaque == "" {
		return u.Redacted()
	}
	prefix, userinfo, rest, ok := splitUserinfo(raw)
	if !ok {
		return raw
	}
	user, _, hasPassword := strings.Cut(userinfo, ":")
	if !hasPassword {
		return raw
	}
	return prefix + user + ":xxxxx" + rest
}

// RedactError returns err with rawURL's password hidden wherever err's text repeats it:
// the whole URL, shown as RedactURL shows it, and the password alone, as written and
// unescaped (a driver's error may quote the URL's parts). The result wraps err, so
// errors.Is and errors.As still see what it was; err itself is returned when its text
// holds no password.
func RedactError(err error, rawURL string) error {
	if err == nil || rawURL == "" {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), rawURL, RedactURL(rawURL))
	if _, userinfo, _, ok := splitUserinfo(rawURL); ok {
		if _, pw, ok := strings.Cut(userinfo, ":"); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
			if plain, uerr := url.PathUnescape(pw); uerr == nil && plain != "" {
				msg = strings.ReplaceAll(msg, plain, "xxxxx")
			}
		}
	}
	if msg == err.Error() {
		return err
	}
	return redactedError{msg: msg, err: err}
}

// splitUserinfo splits raw into what comes before its userinfo (the scheme and "://",
// if any), the userinfo, and the rest from the "@" that ends it: the last "@" of the
// URL, since an unescaped "@" in a password is the commonest mistake.
func splitUserinfo(raw string) (prefix, userinfo, rest string, ok bool) {
	scheme, after, found := strings.Cut(raw, "://")
	if found {
		prefix = scheme + "://"
	} else {
		after = raw
	}
	at := strings.LastIndex(after, "@")
	if at < 0 {
		return "", "", "", false
	}
	return prefix, after[:at], after[at:], true
}

// redactedError is an error whose text has a password hidden.
type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }
