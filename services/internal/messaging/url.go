package messaging

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// checkURL checks raw as the client reads it (amqp.ParseURI), so that a URL it cannot
// use is refused with the configuration rather than retried for ever. The error never
// holds the URL's password.
func checkURL(raw string) error {
	uri, err := amqp.ParseURI(raw)
	if err != nil {
		// net/url's errors quote the whole URL, password included: keep only what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			return errors.New(strings.Replace(err.Error(), ue.Error(), ue.Err.Error(), 1))
		}
		return err
	}
	if uri.Port < 1 || uri.Port > 65535 {
		return fmt.Errorf("port %d is not between 1 and 65535", uri.Port)
	}
	return nil
}
