// Package config reads a service's typed configuration from the environment, with the
// defaults written once in struct tags (github.com/caarlos0/env):
//
//	type Config struct {
//		config.Base
//		Mongo mongodb.Config
//		PaymentLimitCents int64 `env:"PAYMENT_LIMIT_CENTS" envDefault:"100000"`
//	}
//	var cfg Config
//	if err := config.Load(&cfg); err != nil { return err } // names the bad variable
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Base is what every service binary reads; services embed it in their own Config.
type Base struct {
	// Port is the TCP port of the HTTP server.
	Port int `env:"PORT" envDefault:"8080"`
	// Host is the address the HTTP server listens on: empty for every address (in a pod),
	// 127.0.0.1 for this machine only (make run). Not HOST, which some shells (tcsh) set to
	// the machine's name.
	Host string `env:"LISTEN_HOST"`
	// LogLevel is debug, info, warn or error.
	LogLevel slog.Level `env:"LOG_LEVEL" envDefault:"info"`
	// ReadHeaderTimeout bounds reading a request's headers (slow-loris protection).
	ReadHeaderTimeout time.Duration `env:"HTTP_READ_HEADER_TIMEOUT" envDefault:"5s"`
	// ReadTimeout bounds reading a whole request.
	ReadTimeout time.Duration `env:"HTTP_READ_TIMEOUT" envDefault:"15s"`
	// WriteTimeout bounds handling a request and writing its response.
	WriteTimeout time.Duration `env:"HTTP_WRITE_TIMEOUT" envDefault:"30s"`
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout time.Duration `env:"HTTP_IDLE_TIMEOUT" envDefault:"120s"`
	// ShutdownTimeout is how long in-flight requests get to finish after SIGTERM.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s"`
}

// Settings returns b; a service's config, embedding Base, thus tells the kit its base
// settings.
func (b Base) Settings() Base { return b }

// Validate checks what the types alone cannot: PORT is one the probes can find (not 0,
// which would listen on a random port) and every timeout is positive (0 turns most of
// them off, a negative one fails every request or stops at once).
func (b Base) Validate() error {
	var errs []error
	if b.Port < 1 || b.Port > 65535 {
		errs = append(errs, fmt.Errorf("PORT=%d: must be between 1 and 65535", b.Port))
	}
	if b.Host != "" && net.ParseIP(b.Host) == nil {
		errs = append(errs, fmt.Errorf("LISTEN_HOST=%q: must be an IP address, or empty for every address", b.Host))
	}
	errs = append(errs, Positive(
		Duration{"HTTP_READ_HEADER_TIMEOUT", b.ReadHeaderTimeout},
		Duration{"HTTP_READ_TIMEOUT", b.ReadTimeout},
		Duration{"HTTP_WRITE_TIMEOUT", b.WriteTimeout},
		Duration{"HTTP_IDLE_TIMEOUT", b.IdleTimeout},
		Duration{"SHUTDOWN_TIMEOUT", b.ShutdownTimeout},
	))
	return errors.Join(errs...)
}

// Duration is a duration read from the environment variable Name, for Positive.
type Duration struct {
	Name  string
	Value time.Duration
}

// Positive returns an error naming each of ds that is not positive, or nil.
func Positive(ds ...Duration) error {
	var errs []error
	for _, d := range ds {
		if d.Value <= 0 {
			errs = append(errs, fmt.Errorf("%s=%s: must be positive", d.Name, d.Value))
		}
	}
	return errors.Join(errs...)
}

// AtLeast returns an error naming the variable name when value is below low.
func AtLeast[N ~int | ~int64](name string, value, low N) error {
	if value < low {
		return fmt.Errorf("%s=%d: must be at least %d", name, value, low)
	}
	return nil
}

// Between returns an error naming the variable name when value is outside [low, high].
func Between[N ~int | ~int64](name string, value, low, high N) error {
	if value < low || value > high {
		return fmt.Errorf("%s=%d: must be between %d and %d", name, value, low, high)
	}
	return nil
}

// Validator is a configuration with rules beyond types; Load calls Validate after parsing.
type Validator interface {
	Validate() error
}

// Load fills cfg (a pointer to a struct) from the environment. A value that does not
// parse returns an error naming the variable and the value, so the binary stops at start
// with a message an operator can act on. If cfg, or a struct it embeds or holds, has a
// Validate method, Load calls it.
func Load(cfg any) error {
	return LoadFrom(cfg, nil)
}

// LoadFrom is Load reading the variables from environ ("KEY=value" entries) instead of
// the process environment when environ is not nil; tests use it.
func LoadFrom(cfg any, environ []string) error {
	opts := env.Options{}
	if environ != nil {
		opts.Environment = env.ToMap(environ)
	}
	if err := env.ParseWithOptions(cfg, opts); err != nil {
		return explain(cfg, err, opts.Environment)
	}
	return validate(reflect.ValueOf(cfg))
}

// validate calls Validate on v and on the structs it holds, outermost last, and joins
// what they report, so that one start names every bad variable.
func validate(v reflect.Value) error {
	if err := errors.Join(validateAll(v)...); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	return nil
}

func validateAll(v reflect.Value) []error {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	var errs []error
	for i := range v.NumField() {
		if f := v.Field(i); f.CanInterface() && f.Kind() == reflect.Struct {
			errs = append(errs, validateAll(f.Addr())...)
		}
	}
	if val, ok := v.Addr().Interface().(Validator); ok {
		// A struct with no Validate of its own has the one of a struct it embeds, called
		// already: report its findings once.
		errs = appendNew(errs, val.Validate())
	}
	return errs
}

// appendNew appends the errors err joins (or err) that errs does not hold yet.
func appendNew(errs []error, err error) []error {
	if err == nil {
		return errs
	}
	parts := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts = j.Unwrap()
	}
	for _, p := range parts {
		if !slices.ContainsFunc(errs, func(e error) bool { return e.Error() == p.Error() }) {
			errs = append(errs, p)
		}
	}
	return errs
}

// explain rewrites env's errors, which name Go fields, to name environment variables.
func explain(cfg any, err error, environ map[string]string) error {
	keys := map[string][]envKey{}
	collectKeys(reflect.TypeOf(cfg), "", keys)
	lookup := func(k string) string {
		if environ != nil {
			return environ[k]
		}
		return os.Getenv(k)
	}

	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	msgs := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) && len(keys[pe.Name]) > 0 {
			for _, k := range keys[pe.Name] {
				why := pe.Err.Error()
				if want := wants(k.typ); want != "" {
					why = fmt.Sprintf("must be %s (%s)", want, why)
				}
				msgs = append(msgs, fmt.Sprintf("%s=%q: %s", k.name, lookup(k.name), why))
			}
			continue
		}
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("invalid configuration: %s", strings.Join(msgs, "; "))
}

// envKey is an environment variable a field is read from, and the field's type.
type envKey struct {
	name string
	typ  reflect.Type
}

// wants says what a value of a field of type t must be, for an error about one that did not
// parse; "" when the parser's own error says it.
func wants(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return "a duration such as 500ms, 5s or 2m"
	case reflect.TypeFor[slog.Level]():
		return "debug, info, warn or error"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return ""
}

// collectKeys maps each Go field name to the environment variables it may come from
// (a name can repeat in nested structs).
func collectKeys(t reflect.Type, prefix string, keys map[string][]envKey) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if key == "" && ft.Kind() == reflect.Struct {
			collectKeys(ft, prefix+f.Tag.Get("envPrefix"), keys)
			continue
		}
		if key != "" {
			keys[f.Name] = append(keys[f.Name], envKey{name: prefix + key, typ: ft})
		}
	}
}
