package httpapi_test

import (
	"fmt"
	"testing"
)

// TestEmailSpellingsMakeOneUser: one address spelt in Unicode's composed (NFC) and
// decomposed (NFD) forms, or in upper and lower case, sent at once, makes one user.
func TestEmailSpellingsMakeOneUser(t *testing.T) {
	for _, tc := range []struct {
		name      string
		spellings []string
	}{
		{"composed and decomposed", []string{
			"José@Example.com",       // é precomposed (U+00E9)
			"Jose\u0301@example.com", // e + combining acute (U+0301)
			"JOSÉ@EXAMPLE.COM",       // upper case, É precomposed
			"JOSE\u0301@example.COM", // upper case, decomposed
		}},
		{"decomposed domain", []string{
			"ana@exämple.com",
			"ana@exa\u0308mple.com",
		}},
		{"domain as an A-label", []string{
			"ana@exämple.com",
			"ana@xn--exmple-cua.com",
			"ana@XN--EXMPLE-CUA.COM",
		}},
		{"final sigma", []string{
			"οδος@example.com", // lower case, final sigma ς
			"ΟΔΟΣ@EXAMPLE.COM", // its upper case
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newAPI(t)
			count := createAtOnce(t, api, 8, tc.spellings)
			got := listAll(t, api)
			if count[201] != 1 || len(got) != 1 {
				emails := []string{}
				for _, u := range got {
					emails = append(emails, fmt.Sprintf("%+q", u.Email))
				}
				t.Errorf("statuses = %v, stored users' emails = %v; want one 201 and one user", count, emails)
			}
		})
	}
}

// TestEmailStoredAsOtherSpellingIsTaken: an address whose domain's A-label holds a letter
// that folds to ASCII (ſ, the long s, folds to s) is one email with its A-label and its
// Unicode spelling: whichever is registered first, the others are 409, and the email
// stored is the domain's Unicode form, as the document says.
func TestEmailStoredAsOtherSpellingIsTaken(t *testing.T) {
	spellings := []string{
		"ana@xn--ſtrae-oqa.de", // ſ folds to s: the A-label of straße
		"ana@xn--strae-oqa.de",
		"ana@straße.de",
	}
	for first := range spellings {
		t.Run(fmt.Sprintf("%+q first", spellings[first]), func(t *testing.T) {
			api := newAPI(t)
			if u := createUser(t, api, "Ana", spellings[first]); u.Email != "ana@straße.de" {
				t.Errorf("stored email = %+q, want %+q", u.Email, "ana@straße.de")
			}
			for i, email := range spellings {
				if i == first {
					continue
				}
				res := api.Request(t, "POST", "/users", map[string]string{"name": "Other", "email": email})
				if res.Status != 409 {
					t.Errorf("POST %+q after %+q = %d %s, want 409", email, spellings[first], res.Status, res.Body)
				}
			}
		})
	}
}

// TestEmailWithNonASCIIxnLabelIsItsOwn: a label that begins xn-- but holds a letter beyond
// ASCII is no A-label: the email is stored as it was given (folded), not as the domain the
// punycode decoder would read from it (xn--é-xxx as é㤥), whose own address stays free.
func TestEmailWithNonASCIIxnLabelIsItsOwn(t *testing.T) {
	api := newAPI(t)
	if u := createUser(t, api, "Ana", "ana@xn--\u00e9-xxx.de"); u.Email != "ana@xn--\u00e9-xxx.de" {
		t.Errorf("stored email = %+q, want %+q", u.Email, "ana@xn--\u00e9-xxx.de")
	}
	if res := api.Request(t, "POST", "/users", map[string]string{"name": "Other", "email": "ana@\u00e9\u3925.de"}); res.Status != 201 {
		t.Errorf("POST %+q = %d %s, want 201: another address", "ana@\u00e9\u3925.de", res.Status, res.Body)
	}
}
