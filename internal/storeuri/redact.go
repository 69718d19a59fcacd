package storeuri

import (
	"net/url"
	"slices"
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
// the whole URL, shown as RedactURL shows it, the password alone, as written and
// unescaped (a driver's error may quote the URL's parts), and each piece of it between
// the characters that end a URL's parts ("/", "?", "#", "@", ":"): a parser that meets
// an unescaped one in a password quotes what it took for a host, a port or a path. A
// password or piece shorter than minHidden is hidden only inside the whole URL: alone it
// would hide ordinary text (a password "1" in 127.0.0.1), and tells next to nothing. The
// result wraps err, so errors.Is and errors.As still see what it was; err itself is
// returned when its text holds no password.
func RedactError(err error, rawURL string) error {
	if err == nil || rawURL == "" {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), rawURL, RedactURL(rawURL))
	if _, userinfo, _, ok := splitUserinfo(rawURL); ok {
		if _, pw, ok := strings.Cut(userinfo, ":"); ok {
			for _, secret := range secretPieces(pw) {
				msg = strings.ReplaceAll(msg, secret, "xxxxx")
			}
		}
	}
	if msg == err.Error() {
		return err
	}
	return redactedError{msg: msg, err: err}
}

// minHidden is the length from which a password, or a piece of one, is hidden on its own.
const minHidden = 4

// secretPieces returns what of password pw is hidden on its own, longest first (so that
// a piece is not hidden inside the whole, leaving the rest of it): pw, unescaped, and
// their pieces between "/", "?", "#", "@" and ":", each at least minHidden long.
func secretPieces(pw string) []string {
	var pieces []string
	add := func(s string) {
		if len(s) >= minHidden && !slices.Contains(pieces, s) {
			pieces = append(pieces, s)
		}
	}
	forms := []string{pw}
	if plain, err := url.PathUnescape(pw); err == nil {
		forms = append(forms, plain)
	}
	for _, f := range forms {
		add(f)
		for piece := range strings.FieldsFuncSeq(f, func(r rune) bool { return strings.ContainsRune("/?#@:", r) }) {
			add(piece)
		}
	}
	slices.SortStableFunc(pieces, func(a, b string) int { return len(b) - len(a) })
	return pieces
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
