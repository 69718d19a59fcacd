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
