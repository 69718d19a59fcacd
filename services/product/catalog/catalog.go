// Package catalog holds the product service's domain: what a product is, the rules its
// fields follow, and how a reservation request is priced from the products it names.
// It knows nothing of HTTP or storage; its errors are apperr errors, which the web kit
// maps to the contract's status codes.
package catalog

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
)

// Limits of a product's fields. The price and stock bounds keep every reservation total
// (MaxQuantity × MaxLines × MaxPriceCents = 5·10^14) exact in int64 and in a JSON number.
const (
	MaxNameLength        = 200
	MaxDescriptionLength = 5000
	MaxPriceCents        = 10_000_000_000 // 100 million in the currency's main unit
	MaxStock             = 1_000_000_000
	DefaultCurrency      = "USD"
)

// Product is a sellable item. Stock is what can still be reserved: units held by
// reservations are already taken out of it.
type Product struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	PriceCents  int64     `json:"priceCents"`
	Currency    string    `json:"currency"`
	Stock       int64     `json:"stock"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// NewProduct is a product to create, as POST /products sends it. Currency is a code
// like any other field: the HTTP API puts DefaultCurrency there for a body that leaves it
// out, and a currency sent empty is refused as PATCH refuses it.
type NewProduct struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	PriceCents  int64  `json:"priceCents"`
	Currency    string `json:"currency"`
	Stock       int64  `json:"stock"`
}

// Normalize trims the text fields and the currency and upper-cases the currency, then
// checks every rule, reporting all broken ones at once.
func (p *NewProduct) Normalize() error {
	p.Name = strings.TrimSpace(p.Name)
	p.Description = strings.TrimSpace(p.Description)
	var v apperr.Validator
	checkName(&v, p.Name)
	checkDescription(&v, p.Description)
	checkPrice(&v, p.PriceCents)
	p.Currency = normalizeCurrency(&v, p.Currency)
	checkStock(&v, p.Stock)
	return v.Err()
}

// Patch is the body of PATCH /products/{id}: only the fields present change.
type Patch struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	PriceCents  *int64  `json:"priceCents"`
	Currency    *string `json:"currency"`
	Stock       *int64  `json:"stock"`
}

// Normalize applies NewProduct's rules to the fields present; a patch changing nothing
// is refused, since it is almost certainly a client mistake (a misspelt field is already
// refused by strict decoding).
func (p *Patch) Normalize() error {
	var v apperr.Validator
	if p.Name != nil {
		*p.Name = strings.TrimSpace(*p.Name)
		checkName(&v, *p.Name)
	}
	if p.Description != nil {
		*p.Description = strings.TrimSpace(*p.Description)
		checkDescription(&v, *p.Description)
	}
	if p.PriceCents != nil {
		checkPrice(&v, *p.PriceCents)
	}
	if p.Currency != nil {
		*p.Currency = normalizeCurrency(&v, *p.Currency)
	}
	if p.Stock != nil {
		checkStock(&v, *p.Stock)
	}
	if p.Name == nil && p.Description == nil && p.PriceCents == nil && p.Currency == nil && p.Stock == nil {
		v.Add("body", "must change at least one of name, description, priceCents, currency, stock")
	}
	return v.Err()
}

// currencyCode is a code as a client may send it: three ASCII letters, either case.
var currencyCode = regexp.MustCompile(`^[A-Za-z]{3}$`)

// currencySpace is the white space trimmed around a currency code, as openapi.yaml's
// pattern for it allows: space, tab, line feed, form feed and carriage return, which `\s`
// matches in every regular-expression dialect (Go's, ECMAScript's). strings.TrimSpace also
// trims Unicode's (a no-break space, U+0085), which a client checking the document would
// refuse.
const currencySpace = " \t\n\f\r"

func checkName(v *apperr.Validator, name string) {
	n := utf8.RuneCountInString(name)
	if v.Check(n >= 1 && n <= MaxNameLength, "name", fmt.Sprintf("must be 1 to %d characters", MaxNameLength)) {
		v.Check(!strings.ContainsFunc(name, unicode.IsControl), "name", "must not contain control characters")
	}
}

func checkDescription(v *apperr.Validator, d string) {
	v.Check(utf8.RuneCountInString(d) <= MaxDescriptionLength, "description",
		fmt.Sprintf("must be at most %d characters", MaxDescriptionLength))
}

func checkPrice(v *apperr.Validator, cents int64) {
	v.Check(cents > 0 && cents <= MaxPriceCents, "priceCents",
		fmt.Sprintf("must be an integer from 1 to %d", int64(MaxPriceCents)))
}

// normalizeCurrency returns c trimmed and upper-cased, recording in v why it is invalid.
// It is checked before it is upper-cased: strings.ToUpper maps some letters beyond ASCII
// to ASCII ones ("ſ", U+017F, to "S"), so "uſd" would pass as USD.
func normalizeCurrency(v *apperr.Validator, c string) string {
	c = strings.Trim(c, currencySpace)
	if !v.Check(currencyCode.MatchString(c), "currency", "must be a 3-letter ISO 4217 code such as USD") {
		return c
	}
	return strings.ToUpper(c)
}

func checkStock(v *apperr.Validator, stock int64) {
	v.Check(stock >= 0 && stock <= MaxStock, "stock", fmt.Sprintf("must be an integer from 0 to %d", MaxStock))
}
