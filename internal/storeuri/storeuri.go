// Package storeuri checks the connection strings of the suite's stores (a MongoDB URI, a
// RabbitMQ URL) as their clients read them, without connecting: the services check their
// settings with it at start, and the operator checks an external store's URI with it before
// any pod is given one.
package storeuri

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

// srvPrefix starts a connection string whose hosts and options are looked up in DNS.
const srvPrefix = connstring.SchemeMongoDBSRV + "://"

// ParseMongoDB parses and validates uri with the driver's own parser (connstring), as a
// client connecting with it would, but makes no DNS lookup: the driver looks a mongodb+srv
// URI's records up as it parses it, and a failed lookup is a connection error, for the
// client to report, not a bad URI. Such a URI is checked as the mongodb:// one its lookups
// would give, with the rules of its own form: one host, no port. The driver's errors may
// quote a part of the URI; they never hold its password (RedactError), nor the value of an
// option that holds a secret (secretOptions).
func ParseMongoDB(uri string) (*connstring.ConnString, error) {
	if rest, ok := strings.CutPrefix(uri, srvPrefix); ok {
		var err error
		if uri, err = withoutSRV(rest); err != nil {
			return nil, err
		}
	}
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil {
		return nil, redactOptions(RedactError(err, uri), uri)
	}
	return cs, nil
}

// withoutSRV is the mongodb:// URI for rest, a mongodb+srv URI after its scheme: the same
// user, host, database and options, less the options only SRV allows.
func withoutSRV(rest string) (string, error) {
	userinfo, hostAndPath := "", rest
	if i := strings.Index(rest, "@"); i >= 0 {
		userinfo, hostAndPath = rest[:i+1], rest[i+1:]
	}
	host, pathAndQuery := hostAndPath, ""
	if i := strings.IndexAny(hostAndPath, "/?"); i >= 0 {
		host, pathAndQuery = hostAndPath[:i], hostAndPath[i:]
	}
	if strings.Contains(host, ",") {
		return "", errors.New("a mongodb+srv URI names one host")
	}
	if _, _, err := net.SplitHostPort(host); err == nil {
		return "", errors.New("a mongodb+srv URI names no port")
	}
	path, query, hasQuery := strings.Cut(pathAndQuery, "?")
	if hasQuery {
		// Options as the driver splits them: separated by "&" or ";".
		var kept []string
		for _, opt := range strings.FieldsFunc(query, func(r rune) bool { return r == '&' || r == ';' }) {
			if name, _ := optionName(opt); name != "srvmaxhosts" && name != "srvservicename" {
				kept = append(kept, opt)
			}
		}
		path += "?" + strings.Join(kept, "&")
	}
	return connstring.SchemeMongoDB + "://" + userinfo + host + path, nil
}

// CheckAMQP checks raw as the AMQP client reads it (amqp.ParseURI), so that a URL it
// cannot use is refused where it is given rather than retried for ever. The error never
// holds the URL's password (RedactError).
func CheckAMQP(raw string) error {
	uri, err := amqp.ParseURI(raw)
	if err != nil {
		// net/url's errors quote the whole URL, password included: keep only what went wrong.
		// And what it took for a host, a port or a path may be a piece of the password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = errors.New(strings.Replace(err.Error(), ue.Error(), ue.Err.Error(), 1))
		}
		return RedactError(err, raw)
	}
	if uri.Port < 1 || uri.Port > 65535 {
		// The "port" may be the start of a password net/url took it for ("shop:123456#x@mq").
		return RedactError(fmt.Errorf("port %d is not between 1 and 65535", uri.Port), raw)
	}
	return nil
}

// optionName is the name of opt, one option of a MongoDB URI ("name=value"), as the driver
// reads it: %-escapes decoded, in lower case; and its value as written.
func optionName(opt string) (name, value string) {
	name, value, _ = strings.Cut(opt, "=")
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	return strings.ToLower(name), value
}
