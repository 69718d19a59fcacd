// Package users is the user service's domain: what a user is and the rules its
// fields follow. It knows nothing of HTTP or MongoDB.
package users

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
)

// Rules of the fields.
const (
	MinNameLength  = 2
	MaxNameLength  = 100
	MaxEmailLength = 254 // RFC 5321's limit on a forward path, in characters as the API documents it
)

// User is a customer of the shop.
type User struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"createdAt"`
}

// NotFound is the error of an unknown or malformed user id.
func NotFound() error { return apperr.NotFound("User not found") }

// EmailTaken is the error of an email another user already has.
func EmailTaken() error {
	return apperr.Conflict("email already in use",
		apperr.FieldError{Field: "email", Message: "is already used by another user"})
}

// NewUser is a user to create.
type NewUser struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Normalize trims the name and lower-cases the email, then checks every rule, reporting
// all broken ones at once.
func (n *NewUser) Normalize() error {
	var v apperr.Validator
	n.Name = checkName(&v, n.Name)
	n.Email = checkEmail(&v, n.Email)
	return v.Err()
}

// Patch holds the fields of a user to change; nil ones keep their value.
type Patch struct {
	Name  *string
	Email *string
}

// Normalize applies NewUser's rules to the fields present; a patch changing nothing is
// refused, as the product service refuses one: it is almost certainly a client mistake
// (a misspelt field is already refused by strict decoding).
func (p *Patch) Normalize() error {
	var v apperr.Validator
	if p.Name != nil {
		*p.Name = checkName(&v, *p.Name)
	}
	if p.Email != nil {
		*p.Email = checkEmail(&v, *p.Email)
	}
	if p.Name == nil && p.Email == nil {
		v.Add("body", "must change at least one of name, email")
	}
	return v.Err()
}

// checkName returns name trimmed, recording in v why it is invalid.
func checkName(v *apperr.Validator, name string) string {
	name = strings.TrimSpace(name)
	n := utf8.RuneCountInString(name)
	switch {
	case n < MinNameLength || n > MaxNameLength:
		v.Add("name", fmt.Sprintf("must be %d to %d characters", MinNameLength, MaxNameLength))
	case !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl):
		v.Add("name", "must not contain control characters")
	}
	return name
}

// joinerChars are the zero-width non-joiner and joiner, which the spelling of Persian,
// Devanagari, Sinhala and other scripts needs: the only invisible characters an email may
// hold, where its script calls for them.
const joinerChars = "\u200c\u200d"

// invisible tells a character that does not show (a control or format character, a space
// other than ASCII's), the joiners aside.
func invisible(r rune) bool {
	return !unicode.IsPrint(r) && !strings.ContainsRune(joinerChars, r)
}

// joinerRules checks the joiners as IDNA2008 does in domain names (its CONTEXTJ rules):
// after a virama, or a non-joiner between letters that join.
var joinerRules = idna.New(idna.CheckJoiners(true))

// joinersAsSpelt tells whether the joiners of email stand where its script calls for them,
// and not where they would only hide (after an ASCII letter, at the end of a part).
func joinersAsSpelt(email string) bool {
	local, domain, _ := strings.Cut(email, "@")
	_, errLocal := joinerRules.ToASCII(local)
	_, errDomain := joinerRules.ToASCII(domain)
	return errLocal == nil && errDomain == nil
}

// aLabels reads a domain's A-labels (xn--…) as IDNA2008 allows them, mapping nothing: a label
// that decodes to what no IDN may hold (a decomposed letter, which NFC would then make another
// domain's; a disallowed character such as ⒈) is left as written, a name of its own.
var aLabels = idna.New(idna.ValidateLabels(true), idna.BidiRule(), idna.CheckJoiners(true))

// CanonicalEmail is email as it is stored and compared: trimmed, with a domain written in
// ASCII (an IDNA A-label, xn--…) in its Unicode form, in Unicode's composed form (NFC), and
// with each letter in the lower case of its upper case (foldRune). So the spellings of one
// address that differ only in case, in how an accented letter is encoded (é, or e and
// U+0301) or in how the domain is written are one email, and the unique index on email
// finds it taken. The store rewrites emails stored in an earlier form to this one
// (store.MigrateEmails): a change to what it maps an email to needs a new migration there.
func CanonicalEmail(email string) string {
	// Folded before the A-labels are read as well as after: a letter that folds to ASCII
	// (the long s ſ to s, as strings.EqualFold holds them equal) can make a label an A-label
	// of another domain, which the label spelt so, and that domain spelt in Unicode, must be
	// the same email as (or the canonical form of a canonical form would be another).
	email = foldEmail(strings.TrimSpace(email))
	local, domain, found := strings.Cut(email, "@")
	if !found || !strings.Contains(domain, "xn--") {
		return email
	}
	// Label by label: a U-label or an ASCII one that IDNA2008 refuses beside it (ab--cd,
	// -x) must not keep the domain's valid A-labels from being read, or the domain
	// spelt in Unicode would be another email.
	labels := strings.Split(domain, ".")
	for i, label := range labels {
		// An A-label is ASCII: x/net/idna's punycode decoder also takes letters beyond ASCII
		// before the last hyphen (xn--é-xxx would read as é㤥, another domain's name).
		if strings.HasPrefix(label, "xn--") && isASCII(label) {
			if u, err := aLabels.ToUnicode(label); err == nil {
				labels[i] = u
			}
		}
	}
	// A U-label is composed and lower-case, but may hold a letter that folds (ς).
	return foldEmail(local + "@" + strings.Join(labels, "."))
}

// isASCII tells whether s holds only ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// foldEmail is s in Unicode's composed form with each letter folded (foldRune): composed
// before the letters are folded (a decomposed É is E and an accent), and again after,
// which folding may have left uncomposed.
func foldEmail(s string) string {
	return norm.NFC.String(strings.Map(foldRune, norm.NFC.String(s)))
}

// foldRune is r lower-cased such that the letters strings.EqualFold holds equal (those of
// one simple case folding orbit) come out alike: the lower case of their upper case (the
// final sigma ς and σ are both Σ, the micro sign µ and μ both Μ, the long s ſ is S). A
// letter of no orbit (the dotless ı, say) is only lower-cased, as before; ß stays apart
// from ss, as simple folding keeps them.
func foldRune(r rune) rune {
	if unicode.SimpleFold(r) == r {
		return unicode.ToLower(r)
	}
	return unicode.ToLower(unicode.ToUpper(r))
}

// checkEmail returns email in its canonical form (CanonicalEmail), recording in v why it is invalid:
// it must be a bare address (local@domain, no display name) that net/mail parses.
func checkEmail(v *apperr.Validator, email string) string {
	email = CanonicalEmail(email)
	local, domain, found := strings.Cut(email, "@")
	switch {
	case email == "":
		v.Add("email", "is required")
	case !found:
		v.Add("email", "must be an email address such as name@example.com (it must contain @)")
	case local == "":
		v.Add("email", "must be an email address such as name@example.com (a name must come before the @)")
	case domain == "":
		v.Add("email", "must be an email address such as name@example.com (a domain must come after the @)")
	case utf8.RuneCountInString(email) > MaxEmailLength: // characters, as the message says, not bytes
		v.Add("email", fmt.Sprintf("must be at most %d characters", MaxEmailLength))
	case strings.ContainsFunc(email, invisible) || strings.ContainsAny(email, joinerChars) && !joinersAsSpelt(email):
		// net/mail takes any UTF-8: a zero-width space, a soft hyphen or a right-to-left
		// override would make an address that looks like another user's, which the
		// uniqueness of emails is there to prevent.
		v.Add("email", "must not contain invisible or control characters")
	default:
		if a, err := mail.ParseAddress(email); err != nil || a.Address != email || a.Name != "" {
			v.Add("email", "must be an email address such as name@example.com")
		}
	}
	return email
}
