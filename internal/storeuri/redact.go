package storeuri

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// RedactURL returns raw with its password, if any, replaced by "xxxxx", for logs and
// errors. It also hides the password of a URL net/url cannot parse, or parses as an
// opaque one ("user:password@host" reads as scheme "user"), since an unescaped "/" or
// "@" in a password is what usually makes a connection URL unparsable.
func RedactURL(raw string) string {
	if u, ok := parsed(raw); ok {
		return u.Redacted()
	}
	prefix, userinfo, rest, ok := splitUserinfo(raw, false)
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
// unescaped (a driver's error may quote the URL's parts), each also as %q quotes it. When
// net/url cannot parse the URL (an unescaped "/", "?", "#", "@", ":" or "," in the password,
// most often), a parser quotes what it took for a host, a port or a path, cut wherever its
// own reading cut: so every run of minHidden or more characters of the password, in any of
// those forms, is hidden wherever the text has one. A password or run shorter than minHidden
// is hidden only inside the whole URL: alone it would hide ordinary text (a password "1" in
// 127.0.0.1), and tells next to nothing. The result wraps err, so errors.Is and errors.As
// still see what it was; err itself is returned when its text holds no password.
func RedactError(err error, rawURL string) error {
	if err == nil || rawURL == "" {
		return err
	}
	msg := err.Error()
	redacted := RedactURL(rawURL)
	msg = strings.ReplaceAll(msg, rawURL, redacted)
	msg = strings.ReplaceAll(msg, quoted(rawURL), quoted(redacted))
	_, readable := parsed(rawURL)
	if _, userinfo, _, ok := splitUserinfo(rawURL, readable); ok {
		if _, pw, ok := strings.Cut(userinfo, ":"); ok {
			forms := secretForms(pw)
			if readable {
				for _, secret := range forms {
					msg = strings.ReplaceAll(msg, secret, "xxxxx")
				}
			} else {
				msg = hideRuns(msg, forms)
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

// secretForms returns the forms of password pw (as written in the URL) that an error may
// quote, longest first (so that a form is not hidden inside a longer one, leaving the rest of
// it): pw and pw unescaped, each as written and as %q quotes it, each at least minHidden long.
func secretForms(pw string) []string {
	var forms []string
	add := func(s string) {
		for _, form := range []string{s, quoted(s)} {
			if len(form) >= minHidden && !slices.Contains(forms, form) {
				forms = append(forms, form)
			}
		}
	}
	add(pw)
	if plain, err := url.PathUnescape(pw); err == nil {
		add(plain)
	}
	slices.SortStableFunc(forms, func(a, b string) int { return len(b) - len(a) })
	return forms
}

// hideRuns returns msg with each run of at least minHidden bytes that one of secrets holds
// replaced by "xxxxx": from each place in msg, the longest such run in any of them, cut at
// characters' boundaries so that no character is left in part.
func hideRuns(msg string, secrets []string) string {
	var b strings.Builder
	for i := 0; i < len(msg); {
		n := 0
		if utf8.RuneStart(msg[i]) {
			for _, secret := range secrets {
				for j := i + minHidden; j <= len(msg) && strings.Contains(secret, msg[i:j]); j++ {
					if j-i > n && (j == len(msg) || utf8.RuneStart(msg[j])) {
						n = j - i
					}
				}
			}
		}
		if n == 0 {
			b.WriteByte(msg[i])
			i++
			continue
		}
		b.WriteString("xxxxx")
		i += n
	}
	return b.String()
}

// unparsedPassword reports whether raw, read up to its last "@", has a password.
func unparsedPassword(raw string) bool {
	_, userinfo, _, ok := splitUserinfo(raw, false)
	return ok && strings.Contains(userinfo, ":")
}

// quoted is s as %q quotes it, less the quotes: what an error quoting s holds of it.
func quoted(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// parsed returns raw as net/url reads it, and whether net/url reads it as a URL with an
// authority and finds its password. A password with an unescaped "/", "?" or "#" after a port's digits (or none)
// parses too, as something else: "amqp://guest:/s3cret@mq/" is host guest and path
// /s3cret@mq/, "amqp://guest:123456#s3cret@mq/" port 123456 and a fragment. A URL in which
// net/url finds no password, but which has a "user:…@" as far as its last "@", is read as
// one it cannot parse.
func parsed(raw string) (*url.URL, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return nil, false
	}
	_, pw := u.User.Password()
	return u, pw || !unparsedPassword(raw)
}

// splitUserinfo splits raw into what comes before its userinfo (the scheme and "://",
// if any), the userinfo, and the rest from the "@" that ends it. For a URL net/url reads
// (parsed reports it), that is the last "@" of its authority (up to the first "/", "?" or
// "#"), as net/url reads it; for one it cannot, the last "@" of the URL, since an unescaped
// "/", "?" or "@" in a password is the commonest reason (an "@" in such a URL's query is then
// taken for it).
func splitUserinfo(raw string, parsed bool) (prefix, userinfo, rest string, ok bool) {
	scheme, after, found := strings.Cut(raw, "://")
	if found {
		prefix = scheme + "://"
	} else {
		after = raw
	}
	within := after
	if parsed {
		if end := strings.IndexAny(after, "/?#"); end >= 0 {
			within = after[:end]
		}
	}
	at := strings.LastIndex(within, "@")
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

// secretOptions are the MongoDB URI options whose values are secrets, in lower case: the
// password of the TLS client key (under either name), and the mechanism properties, which
// may carry an AWS session token. The driver's parser quotes an option's value whole when it
// cannot unescape it (a literal "%" in a password, most often).
var secretOptions = []string{"tlscertificatekeyfilepassword", "sslclientcertificatekeypassword", "authmechanismproperties"}

// redactOptions returns err with the value of each of uri's secretOptions hidden wherever its
// text has it: the value whole as %q quotes it, and every run of minHidden or more of its
// characters, as written and unescaped. An option is found wherever a "?", "&" or ";" starts
// one, its name read as the driver reads it (%-escapes decoded, any case), and its value runs
// to the next "&" or ";", as the driver splits options: a "?" in a value is part of it. The
// result wraps err.
func redactOptions(err error, uri string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for i := range len(uri) {
		if !strings.ContainsRune("?&;", rune(uri[i])) {
			continue
		}
		pair := uri[i+1:]
		if end := strings.IndexAny(pair, "&;"); end >= 0 {
			pair = pair[:end]
		}
		name, value := optionName(pair)
		if value == "" || !slices.Contains(secretOptions, name) {
			continue
		}
		msg = strings.ReplaceAll(msg, strconv.Quote(value), `"xxxxx"`)
		forms := secretForms(value)
		if plain, uerr := url.QueryUnescape(value); uerr == nil {
			forms = append(forms, secretForms(plain)...)
		}
		msg = hideRuns(msg, forms)
	}
	if msg == err.Error() {
		return err
	}
	return redactedError{msg: msg, err: err}
}
