package users_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/user/users"
)

func TestNewUserNormalize(t *testing.T) {
	tests := []struct {
		name      string
		in        users.NewUser
		want      users.NewUser
		badFields []string
	}{
		{"valid", users.NewUser{Name: "Ada", Email: "ada@example.com"}, users.NewUser{Name: "Ada", Email: "ada@example.com"}, nil},
		{"trimmed and lower-cased", users.NewUser{Name: "  Ada Lovelace ", Email: " Ada@Example.COM "},
			users.NewUser{Name: "Ada Lovelace", Email: "ada@example.com"}, nil},
		{"two characters", users.NewUser{Name: "Al", Email: "a@b"}, users.NewUser{Name: "Al", Email: "a@b"}, nil},
		{"100 characters", users.NewUser{Name: strings.Repeat("é", 100), Email: "a@b.c"}, users.NewUser{Name: strings.Repeat("é", 100), Email: "a@b.c"}, nil},
		{"one character once trimmed", users.NewUser{Name: " A ", Email: "a@b.c"}, users.NewUser{}, []string{"name"}},
		{"101 characters", users.NewUser{Name: strings.Repeat("x", 101), Email: "a@b.c"}, users.NewUser{}, []string{"name"}},
		{"control character", users.NewUser{Name: "Ada\x00", Email: "a@b.c"}, users.NewUser{}, []string{"name"}},
		{"no @", users.NewUser{Name: "Ada", Email: "ada.example.com"}, users.NewUser{}, []string{"email"}},
		{"nothing before @", users.NewUser{Name: "Ada", Email: "@example.com"}, users.NewUser{}, []string{"email"}},
		{"nothing after @", users.NewUser{Name: "Ada", Email: "ada@"}, users.NewUser{}, []string{"email"}},
		{"display name", users.NewUser{Name: "Ada", Email: "Ada <ada@example.com>"}, users.NewUser{}, []string{"email"}},
		{"spaces inside", users.NewUser{Name: "Ada", Email: "ada lovelace@example.com"}, users.NewUser{}, []string{"email"}},
		{"too long", users.NewUser{Name: "Ada", Email: strings.Repeat("a", 250) + "@b.cd"}, users.NewUser{}, []string{"email"}},
		// 254 characters, not bytes: these are 503 bytes.
		{"254 characters", users.NewUser{Name: "Ada", Email: strings.Repeat("ж", 249) + "@b.cd"}, users.NewUser{Name: "Ada", Email: strings.Repeat("ж", 249) + "@b.cd"}, nil},
		{"255 characters", users.NewUser{Name: "Ada", Email: strings.Repeat("ж", 250) + "@b.cd"}, users.NewUser{}, []string{"email"}},
		{"both bad", users.NewUser{}, users.NewUser{}, []string{"name", "email"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in
			err := got.Normalize()
			if tt.badFields == nil {
				if err != nil || got != tt.want {
					t.Errorf("Normalize() = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			assertFields(t, err, tt.badFields)
		})
	}
}

// The message's hint says what the address lacks: "@b" and "a@" have an @.
func TestEmailMessage(t *testing.T) {
	const msg = "must be an email address such as name@example.com"
	tests := []struct{ email, want string }{
		{"ada.example.com", msg + " (it must contain @)"},
		{"@b", msg + " (a name must come before the @)"},
		{"@", msg + " (a name must come before the @)"},
		{"a@", msg + " (a domain must come after the @)"},
		{"a@b@c", msg},
		{"Ada <ada@example.com>", msg},
		// Invisible characters: an address that looks like another's.
		{"ann\u200b@example.com", "must not contain invisible or control characters"},
		{"ann@example.com\u00ad", "must not contain invisible or control characters"},
		{"ann@exam\u202eple.com", "must not contain invisible or control characters"},
		{"ann\u00a0@example.com", "must not contain invisible or control characters"},
		{"ann\x00@example.com", "must not contain invisible or control characters"},
		{"ann\u200d@example.com", "must not contain invisible or control characters"},
		{"zoë\u200c@example.com", "must not contain invisible or control characters"},
		// Letters beyond ASCII are an address's own, and so are the joiners where a script
		// spells with them (after a virama; a non-joiner between Arabic letters).
		{"zoë@example.com", ""},
		{"می\u200cخواهم@example.ir", ""},
		{"ශ්\u200dරී@example.lk", ""},
		{"क्\u200dष@example.in", ""},
	}
	for _, tt := range tests {
		err := (&users.NewUser{Name: "Ada", Email: tt.email}).Normalize()
		if tt.want == "" {
			if err != nil {
				t.Errorf("email %q: %v, want it taken", tt.email, err)
			}
			continue
		}
		var ae *apperr.Error
		if !errors.As(err, &ae) || len(ae.Details) != 1 || ae.Details[0] != (apperr.FieldError{Field: "email", Message: tt.want}) {
			t.Errorf("email %q: %v %+v, want the message %q", tt.email, err, ae, tt.want)
		}
	}
}

func TestPatchNormalize(t *testing.T) {
	name, email := "  Grace ", "GRACE@Example.org"
	p := users.Patch{Name: &name, Email: &email}
	if err := p.Normalize(); err != nil || *p.Name != "Grace" || *p.Email != "grace@example.org" {
		t.Errorf("Normalize() = %q %q %v", *p.Name, *p.Email, err)
	}
	assertFields(t, (&users.Patch{}).Normalize(), []string{"body"})
	bad := "x"
	assertFields(t, (&users.Patch{Email: &bad}).Normalize(), []string{"email"})
	assertFields(t, (&users.Patch{Name: &bad}).Normalize(), []string{"name"})
}

func assertFields(t *testing.T, err error, fields []string) {
	t.Helper()
	var ae *apperr.Error
	if !errors.As(err, &ae) || !errors.Is(err, apperr.ErrValidation) {
		t.Fatalf("error = %v, want a validation error", err)
	}
	if len(ae.Details) != len(fields) {
		t.Fatalf("details = %+v, want fields %v", ae.Details, fields)
	}
	for i, f := range fields {
		if got := ae.Details[i].(apperr.FieldError).Field; got != f {
			t.Errorf("detail %d field = %s, want %s", i, got, f)
		}
	}
}

// TestEmailSpellingsOfOneAddress: the spellings of one address that differ in case, in
// Unicode's encoding of a letter, or in the domain's encoding are stored alike; letters
// that only look alike (ı and i, ß and ss) stay apart.
func TestEmailSpellingsOfOneAddress(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"José@Example.com", "josé@example.com"},
		{"JOSE\u0301@EXAMPLE.COM", "josé@example.com"},
		{"ana@XN--EXMPLE-CUA.com", "ana@exämple.com"},
		{"ΟΔΟΣ@example.gr", "οδοσ@example.gr"},
		{"οδος@example.gr", "οδοσ@example.gr"},
		{"\u00b5@example.gr", "\u03bc@example.gr"},
		{"ılker@example.com", "ılker@example.com"},
		{"straße@example.com", "straße@example.com"},
		// An A-label no IDN may be is a name of its own, not the Unicode it decodes to:
		// xn--u-ccb is u and U+0308, which NFC would make ü.com's (xn--tda); xn--a-ecp is a⒈.
		{"ana@xn--u-ccb.com", "ana@xn--u-ccb.com"},
		{"ana@xn--tda.com", "ana@ü.com"},
		{"ana@xn--a-ecp.ru", "ana@xn--a-ecp.ru"},
		// A label with letters beyond ASCII, once folded, is no A-label: not read, though
		// the punycode decoder would take it (xn--é-xxx as é㤥, xn--café- as café).
		{"ana@xn--\u00e9-xxx.de", "ana@xn--\u00e9-xxx.de"},
		{"ana@xn--\u00b5-xxx.de", "ana@xn--\u03bc-xxx.de"},
		{"ana@xn--caf\u00e9-.de", "ana@xn--caf\u00e9-.de"},
		// A label IDNA2008 refuses beside a valid A-label does not keep that one from
		// being read: the domain spelt in Unicode is the same email.
		{"ana@xn--bcher-kva.ab--cd.example", "ana@bücher.ab--cd.example"},
		{"ana@bücher.ab--cd.example", "ana@bücher.ab--cd.example"},
		{"ana@xn--bcher-kva.-x.example", "ana@bücher.-x.example"},
		{"ana@xn--bcher-kva.3com.xn--4db", "ana@bücher.3com.א"},
		{"ana@bücher.3com.א", "ana@bücher.3com.א"},
		// A label that folding makes an A-label (the long s ſ folds to s) is that A-label:
		// its Unicode form, as the A-label spelt with s is.
		{"ana@xn--\u017ftrae-oqa.de", "ana@straße.de"},
		{"ana@XN--\u017fTRAE-OQA.de", "ana@straße.de"},
		{"ana@xn--strae-oqa.de", "ana@straße.de"},
	} {
		u := users.NewUser{Name: "Ana", Email: tc.in}
		if err := u.Normalize(); err != nil || u.Email != tc.want {
			t.Errorf("%+q → %+q (%v), want %+q", tc.in, u.Email, err, tc.want)
		}
	}
}

// FuzzCanonicalEmailIsStable: an email the service accepts is stored in a form that is its
// own canonical form, so a client that sends it back as it was stored names the same email,
// never another.
func FuzzCanonicalEmailIsStable(f *testing.F) {
	for _, s := range []string{
		"José@Example.com", "ana@xn--\u017ftrae-oqa.de", "ana@XN--EXMPLE-CUA.com", "ΟΔΟΣ@example.gr",
		"\u00b5@example.gr", "ana@xn--u-ccb.com", "ana@xn--bcher-kva.ab--cd.example", "ana@bücher.3com.א",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, email string) {
		u := users.NewUser{Name: "Ana", Email: email}
		if u.Normalize() != nil {
			return // refused: nothing is stored
		}
		again := users.NewUser{Name: "Ana", Email: u.Email}
		if err := again.Normalize(); err != nil || again.Email != u.Email {
			t.Errorf("%+q is stored as %+q, which is refused (%v) or stored as %+q", email, u.Email, err, again.Email)
		}
	})
}
