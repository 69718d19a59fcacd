package storeuri_test

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
)

func TestRedactURL(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"amqp://guest:s3cret@rabbitmq:5672/shop", "amqp://guest:xxxxx@rabbitmq:5672/shop"},
		{"mongodb://u:p%40ss@db1,db2/x?replicaSet=rs", "mongodb://u:xxxxx@db1,db2/x?replicaSet=rs"},
		{"amqp://guest@rabbitmq/", "amqp://guest@rabbitmq/"},
		{"amqp://rabbitmq/", "amqp://rabbitmq/"},
		// Unparsable or opaque: an unescaped "/" or "@" in the password, no scheme.
		{"amqp://guest:s3/cret@rabbitmq/", "amqp://guest:xxxxx@rabbitmq/"},
		{"amqp://guest:p@ss@rabbitmq:notaport/", "amqp://guest:xxxxx@rabbitmq:notaport/"},
		{"guest:s3cret@rabbitmq/", "guest:xxxxx@rabbitmq/"},
		{"garbage", "garbage"},
		// Parsable, with the password read as a path, a query or a fragment.
		{"http://guest:/s3cret@rabbitmq/", "http://guest:xxxxx@rabbitmq/"},
		{"amqp://guest:99999?s3cret@rabbitmq/", "amqp://guest:xxxxx@rabbitmq/"},
		{"amqp://guest:0#s3cret@rabbitmq/", "amqp://guest:xxxxx@rabbitmq/"},
		{"amqp://rabbitmq/shop?appName=shop@laptop", "amqp://rabbitmq/shop?appName=shop@laptop"},
	}
	for _, tt := range tests {
		if got := storeuri.RedactURL(tt.raw); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestRedactError(t *testing.T) {
	tests := []struct{ uri, msg, want string }{
		{"amqp://guest:s3cret@127.0.0.1:1/", `dial "amqp://guest:s3cret@127.0.0.1:1/": refused`, `dial "amqp://guest:xxxxx@127.0.0.1:1/": refused`},
		{"mongodb://u:pw4u@db/x", "auth failed for u:pw4u", "auth failed for u:xxxxx"},
		// A short password is hidden in the URL only: alone it would hide the host.
		{"amqp://shop:1@127.0.0.1:1/shop", "dial tcp 127.0.0.1:1: connect: connection refused", "dial tcp 127.0.0.1:1: connect: connection refused"},
		{"amqp://shop:1@127.0.0.1:1/shop", `dial "amqp://shop:1@127.0.0.1:1/shop"`, `dial "amqp://shop:xxxxx@127.0.0.1:1/shop"`},
		// Runs of a password with an unescaped "/", "?", ":" or "," that a parser quotes.
		{"amqp://u:Kq9ZtAbCdEf/rest@mq/", `invalid port ":Kq9ZtAbCdEf" after host`, `invalid port ":xxxxx" after host`},
		{"mongodb://u:Kq9Zt:AbCdEf?tail@db/", `parsing "AbCdEf?tail": bad; host "Kq9Zt"`, `parsing "xxxxx": bad; host "xxxxx"`},
		{"amqp://u:ab/cdefgh@mq/", `invalid port ":ab" after host, path "/cdefgh@mq/"`, `invalid port ":ab" after host, path "xxxxx@mq/"`},
		{"mongodb://admin:p4@,Tr0ub4dor%zz/Horse@db.example.com:27017/", `invalid host "": invalid host "Tr0ub4dor%zz": invalid URL escape "%zz"`,
			`invalid host "": invalid host "xxxxx": invalid URL escape "%zz"`},
		// As %q quotes them: a quote, a backslash, a character that is not printable.
		{`amqp://u:ab"cdefg/xyz@mq/`, `invalid port ":ab\"cdefg" after host`, `invalid port ":xxxxx" after host`},
		{`amqp://guest:Kq9\ZtSecret@127.0.0.1:1/`, `parse "amqp://guest:Kq9\ZtSecret@127.0.0.1:1/": bad`, `parse "amqp://guest:xxxxx@127.0.0.1:1/": bad`},
		{"amqp://u:pa ssword/x@mq/", `parsing ":pa ssword"`, `parsing ":xxxxx"`},
		// A URL net/url reads is not cut in pieces: an escaped "/" splits nothing, and an
		// "@" in its query is not its user information's.
		{"amqp://shop:Xk9q%2Fshop@mq.example.com:5672/shop", "vhost shop not found; Xk9q/shop refused", "vhost shop not found; xxxxx refused"},
		{"amqp://shop:Pw0rd1234@db1.example.com:5672/shop?appName=shop@laptop", "Addr: db1.example.com:5672: refused Pw0rd1234", "Addr: db1.example.com:5672: refused xxxxx"},
		{"mongodb+srv://u:p%40ss@db/x", "bad password p@ss (p%40ss)", "bad password xxxxx (xxxxx)"},
		{"mongodb://u@db/x", "no password in u@db", "no password in u@db"},
		{"mongodb://db/x", "server selection error", "server selection error"},
		{"", "server selection error", "server selection error"},
	}
	for _, tt := range tests {
		if got := storeuri.RedactError(errors.New(tt.msg), tt.uri).Error(); got != tt.want {
			t.Errorf("RedactError(%q, %q) = %q, want %q", tt.msg, tt.uri, got, tt.want)
		}
	}
	if storeuri.RedactError(nil, "amqp://u:p@h/") != nil {
		t.Error("RedactError(nil) is not nil")
	}
	// What the error was stays visible to errors.Is once its text is redacted.
	err := storeuri.RedactError(&fs.PathError{Op: "open", Path: "mongodb://u:pw@db/x", Err: fs.ErrNotExist}, "mongodb://u:pw@db/x")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
}

// TestParseErrorsHoldNoPassword gives the parsers URLs whose passwords mix letters with the
// characters that cut a URL ("/?#@:,;[]%" and more), unescaped as a user may paste them, and
// checks that no error quotes more than minHidden of a password's characters in a row. (A
// driver quotes an invalid escape, "%" and two characters, and the quote after it may be the
// password's next character too: four in a row, which tells next to nothing.)
func TestParseErrorsHoldNoPassword(t *testing.T) {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	const cutters = `/?#@:,;[]%=&!$'()*+ "\`
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		pw := make([]byte, 8+rng.IntN(20))
		for i := range pw {
			if rng.IntN(4) == 0 {
				pw[i] = cutters[rng.IntN(len(cutters))]
			} else {
				pw[i] = letters[rng.IntN(len(letters))]
			}
		}
		for _, uri := range []string{
			"mongodb://admin:" + string(pw) + "@db.example.com:27017/",
			"mongodb+srv://admin:" + string(pw) + "@cluster0.example.net/",
			"amqp://shop:" + string(pw) + "@mq.example.com:5672/shop",
		} {
			var err error
			if strings.HasPrefix(uri, "amqp") {
				err = storeuri.CheckAMQP(uri)
			} else {
				_, err = storeuri.ParseMongoDB(uri)
			}
			if err == nil {
				continue
			}
			msg := err.Error()
			for i := 0; i+5 <= len(pw); i++ {
				if run := string(pw[i : i+5]); strings.Contains(msg, run) && !strings.Contains(strings.ReplaceAll(uri, string(pw), ""), run) {
					t.Errorf("the error of %q quotes %q of its password: %s", uri, run, msg)
					break
				}
			}
		}
	}
}

// A MongoDB URI's options may hold secrets too: the password of the TLS client key, an AWS
// session token among the mechanism properties. The driver quotes an option's value whose
// %-escapes it cannot read (a literal "%" in a password, most often).
func TestParseErrorsHoldNoOptionSecret(t *testing.T) {
	for _, uri := range []string{
		"mongodb://db.example.com/?tls=true&tlsCertificateKeyFilePassword=Kq9Zt%rest",
		"mongodb://db.example.com/?tls=true&TLSCERTIFICATEKEYFILEPASSWORD=Kq9Zt%rest",
		"mongodb://db.example.com/?ssl=true&sslClientCertificateKeyPassword=Kq9Zt%rest",
		"mongodb://db.example.com/?tls=true&tlsCertificateKeyFile%50assword=Kq9Zt%rest",
		"mongodb+srv://cluster0.example.net/?tls=true&tlsCertificateKeyFilePassword=Kq9Zt%rest",
		"mongodb://AKIAEXAMPLE:c2VjcmV0@db.example.com/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:Kq9Zt%rest",
		// The driver splits options at ";" as at "&", and only there: a "?" is part of a value.
		"mongodb://db.example.com/?tls=true;tlsCertificateKeyFilePassword=Kq9Zt%rest",
		"mongodb+srv://cluster0.example.net/?tls=true;tlsCertificateKeyFilePassword=Kq9Zt%rest",
		"mongodb://db.example.com/?tlsCertificateKeyFilePassword=ab?Kq9Zt%rest",
	} {
		_, err := storeuri.ParseMongoDB(uri)
		if err == nil {
			t.Errorf("ParseMongoDB(%q) took it", uri)
			continue
		}
		if strings.Contains(err.Error(), "Kq9Zt") {
			t.Errorf("the error of %q quotes the secret of an option: %s", uri, err)
		}
	}
}
