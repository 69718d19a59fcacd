package storeuri_test

import (
	"strings"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
)

// leaks returns a run of 5 of pw's characters that msg quotes and rest (the URL without its
// password) does not hold, or "".
func leaks(msg, rest, pw string) string {
	for i := 0; i+5 <= len(pw); i++ {
		if run := pw[i : i+5]; strings.Contains(msg, run) && !strings.Contains(strings.ToLower(rest), strings.ToLower(run)) {
			return run
		}
	}
	return ""
}

// FuzzStoreURIErrorsHoldNoPassword builds scheme://user:pw@rest and checks that neither
// the parsers' errors nor RedactURL quote a piece of pw.
func FuzzStoreURIErrorsHoldNoPassword(f *testing.F) {
	for _, s := range [][4]string{
		{"amqp", "shop", "s3cr/etpass", "mq.example.com:5672/shop"},
		{"mongodb", "admin", "Kq9Zt:AbCdEf?tail", "db.example.com:27017/"},
		{"mongodb+srv", "admin", "p4@,Tr0ub4dor%zz/Horse", "cluster0.example.net/"},
		{"ampq", "shop", "/s3cretpass", "mq/"},
		{"amqp", "shop", "0#s3cretpass", "mq:0/"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, scheme, user, pw, rest string) {
		if len(pw) < 5 || strings.Contains(pw, "x") || strings.Contains(pw, "@") || strings.Contains(user, "@") {
			// An "@" of a URL net/url reads is taken where net/url takes it (RedactError):
			// a password with one, and an "@" after it, is read as the URL says.
			return
		}
		if strings.ContainsFunc(scheme+user+pw+rest, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			return // escaped in RedactURL's output, where its digits may run on into the password's
		}
		uri := scheme + "://" + user + ":" + pw + "@" + rest
		others := scheme + "://" + user + ":" + "@" + rest
		others += " " + storeuri.RedactURL(others) // as escaped there
		if err := storeuri.CheckAMQP(uri); err != nil {
			if run := leaks(err.Error(), others, pw); run != "" {
				t.Errorf("CheckAMQP(%q) quotes %q: %v", uri, run, err)
			}
			// As messaging.Settings.Validate says it.
			if run := leaks(storeuri.RedactURL(uri), others, pw); run != "" {
				t.Errorf("RedactURL(%q) = %q quotes %q, beside CheckAMQP's error %v", uri, storeuri.RedactURL(uri), run, err)
			}
		}
		if _, err := storeuri.ParseMongoDB(uri); err != nil {
			if run := leaks(err.Error(), others, pw); run != "" {
				t.Errorf("ParseMongoDB(%q) quotes %q: %v", uri, run, err)
			}
		}
	})
}
