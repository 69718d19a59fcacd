package resources

import (
	"crypto/rand"
	"fmt"
	"net/url"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
)

// Keys of the credentials Secrets.
const (
	UsernameKey = "username"
	PasswordKey = "password"
)

// RabbitMQVhost is the virtual host the shop's services use in an in-cluster broker.
const RabbitMQVhost = "shop"

// Ports of the stores.
const (
	MongoDBPort  = 27017
	RabbitMQPort = 5672
)

// Databases maps each service that stores data to its own MongoDB database.
var Databases = map[string]string{
	User:    "users",
	Product: "products",
	Order:   "orders",
	Payment: "payments",
}

// RabbitMQURLKey is the key of the connections Secret holding the broker's URL: the
// external broker's, which the services read; the in-cluster broker's with its default
// user, which no service reads (RabbitMQServiceURLKey) and a deleted credentials Secret
// is made again from (CredentialsFromConnections).
const RabbitMQURLKey = "rabbitmq-url"

// RabbitMQServiceURLKey is the key of the connections Secret holding the in-cluster
// broker's URL with service's own user (RabbitMQServiceUsers).
func RabbitMQServiceURLKey(service string) string { return service + "-" + RabbitMQURLKey }

// RabbitMQURLKeyFor is the key of the connections Secret that service reads its
// broker's URL from: its own for the in-cluster broker, the external one's otherwise.
func RabbitMQURLKeyFor(shop *shopv1.Shop, service string) string {
	if shop.Spec.RabbitMQ.External != nil {
		return RabbitMQURLKey
	}
	return RabbitMQServiceURLKey(service)
}

// RabbitMQPasswordKey is the key of the users Secret (RabbitMQUsersSecret) holding the
// password of service's user, which is named after the service.
func RabbitMQPasswordKey(service string) string { return service + "-" + PasswordKey }

// ChecksumKeyKey is the key of the connections Secret holding the key of the services' pod
// checksums (checksum): random, made once per Shop (NewChecksumKey) and kept.
const ChecksumKeyKey = "checksum-key"

// NewChecksumKey returns a new random key for ChecksumKeyKey.
func NewChecksumKey() []byte { return []byte(rand.Text()) }

// MongoDBURIKey is the key of the connections Secret holding service's MongoDB URI.
func MongoDBURIKey(service string) string { return service + "-mongodb-uri" }

// CredentialsSecretName is the name of store's credentials Secret: <shop>-<store>-credentials.
func CredentialsSecretName(shop *shopv1.Shop, store string) string {
	return Name(shop, store+"-"+credentials)
}

// ConnectionsSecretName is the name of the Secret holding every service's URIs.
func ConnectionsSecretName(shop *shopv1.Shop) string { return Name(shop, connections) }

// OwnSecretNames are the names of the Secrets the controller makes for shop: the connections
// Secret, and the credentials of each store in the cluster, and the broker's service users
// and files when it is one. None of them can hold an external store's URI; the others'
// names are free (which stores run in the cluster cannot change).
func OwnSecretNames(shop *shopv1.Shop) []string {
	names := []string{ConnectionsSecretName(shop)}
	for _, s := range InClusterStores(shop) {
		names = append(names, CredentialsSecretName(shop, s))
		if s == RabbitMQ {
			names = append(names, RabbitMQUsersSecretName(shop), RabbitMQConfigSecretName(shop))
		}
	}
	return names
}

// RabbitMQUsersSecretName is the name of the Secret holding the passwords of the in-cluster
// broker's service users: <shop>-rabbitmq-users.
func RabbitMQUsersSecretName(shop *shopv1.Shop) string { return Name(shop, RabbitMQ+"-users") }

// RabbitMQUsersSecret holds the password of each service's user of the in-cluster broker
// (RabbitMQServiceUsers), under RabbitMQPasswordKey. As in a credentials Secret, values
// already in existing are kept as they are and missing ones are generated, so that a
// Shop made before the service users existed gets them without any other value changing;
// other keys are dropped. Unlike a credentials Secret it stays editable: the broker takes
// the users' passwords from its definitions file at every boot that follows a change of
// it (RabbitMQConfigSecret), so an edited password reaches the broker and the services
// alike, each restarted once; so does a new one, should the Secret be deleted.
func RabbitMQUsersSecret(shop *shopv1.Shop, existing *corev1.Secret) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: objectMeta(shop, RabbitMQUsersSecretName(shop), credentials),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{},
	}
	for service := range RabbitMQServiceUsers {
		key := RabbitMQPasswordKey(service)
		s.Data[key] = []byte(rand.Text())
		if existing != nil && len(existing.Data[key]) > 0 {
			s.Data[key] = existing.Data[key]
		}
	}
	return s
}

// CredentialsSecret is the credentials Secret of an in-cluster store. Values already in
// existing are kept as they are: MongoDB initialised its users with them on first
// start, so a new password would lock the services out. Missing values are generated.
//
// The Secret is immutable, so the API server refuses an edit that MongoDB would never
// see (it keeps the users of its first start) while the services were rolled onto it.
// The broker's default user, imported from its definitions (RabbitMQConfigSecret), would
// follow an edit; its Secret is held to the same rule all the same.
func CredentialsSecret(shop *shopv1.Shop, store string, existing *corev1.Secret) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: objectMeta(shop, CredentialsSecretName(shop, store), credentials),
		Type:       corev1.SecretTypeOpaque,
		Immutable:  ptr.To(true),
		Data: map[string][]byte{
			UsernameKey: []byte("shopkeeper"),
			PasswordKey: []byte(rand.Text()),
		},
	}
	if existing != nil {
		for k, v := range existing.Data {
			if _, ours := s.Data[k]; ours && len(v) > 0 {
				s.Data[k] = v
			}
		}
	}
	if store == RabbitMQ && rabbitMQCredentialsError(s) != nil {
		// Only a Secret made by hand, or one an earlier version made and someone edited,
		// can hold such values (RabbitMQConfigSecret refuses them): it stays editable, to be
		// set right.
		s.Immutable = nil
	}
	return s
}

// CredentialsFromConnections returns the credentials the services were given for the
// in-cluster store, read back from the connections Secret conn: the user and password of
// the store's URI there. They are the credentials the store was set up with, so a deleted
// credentials Secret can be made again with them. It returns nil when conn holds none for
// the store: no Secret, a URI naming another host, or FerretDB's, which carries no user.
func CredentialsFromConnections(shop *shopv1.Shop, store string, conn *corev1.Secret) map[string][]byte {
	if conn == nil {
		return nil
	}
	var key string
	var port int
	switch store {
	case MongoDB:
		key, port = MongoDBURIKey(User), MongoDBPort
	case RabbitMQ:
		key, port = RabbitMQURLKey, RabbitMQPort
	default:
		return nil
	}
	u, err := url.Parse(string(conn.Data[key]))
	if err != nil || u.User == nil || u.Host != fmt.Sprintf("%s:%d", Name(shop, store), port) {
		return nil
	}
	password, ok := u.User.Password()
	if !ok || password == "" || u.User.Username() == "" {
		return nil
	}
	data := map[string][]byte{UsernameKey: []byte(u.User.Username()), PasswordKey: []byte(password)}
	if store == RabbitMQ && rabbitMQCredentialsError(&corev1.Secret{Data: data}) != nil {
		return nil // values the broker's files cannot carry: not what it was set up with
	}
	return data
}

// StoreURIs are the base URIs of the shop's stores, before a database is chosen.
type StoreURIs struct {
	MongoDB  string
	RabbitMQ string
	// RabbitMQServices are the in-cluster broker's URLs by service, each with the
	// service's own user (InClusterRabbitMQServiceURLs); none for an external broker.
	RabbitMQServices map[string]string
}

// InClusterMongoDBURI is the URI of the shop's in-cluster MongoDB. MongoDB gets the
// root user of creds (its users live in the admin database); FerretDB over SQLite
// checks no credentials, so its URI carries none and the NetworkPolicy guards it.
func InClusterMongoDBURI(shop *shopv1.Shop, creds *corev1.Secret) string {
	u := url.URL{Scheme: "mongodb", Host: fmt.Sprintf("%s:%d", Name(shop, MongoDB), MongoDBPort), Path: "/"}
	if shop.Spec.MongoDB.Engine != shopv1.EngineFerretDB {
		u.User = url.UserPassword(string(creds.Data[UsernameKey]), string(creds.Data[PasswordKey]))
		u.RawQuery = "authSource=admin"
	}
	return u.String()
}

// InClusterRabbitMQURL is the AMQP URL of the shop's in-cluster broker and virtual host,
// with the broker's default user of creds.
func InClusterRabbitMQURL(shop *shopv1.Shop, creds *corev1.Secret) string {
	return inClusterRabbitMQURL(shop, string(creds.Data[UsernameKey]), string(creds.Data[PasswordKey]))
}

// InClusterRabbitMQServiceURLs are the AMQP URLs of the shop's in-cluster broker and
// virtual host by service, each with the service's own user, its password from users
// (RabbitMQUsersSecret).
func InClusterRabbitMQServiceURLs(shop *shopv1.Shop, users *corev1.Secret) map[string]string {
	urls := map[string]string{}
	for service := range RabbitMQServiceUsers {
		urls[service] = inClusterRabbitMQURL(shop, service, string(users.Data[RabbitMQPasswordKey(service)]))
	}
	return urls
}

func inClusterRabbitMQURL(shop *shopv1.Shop, user, password string) string {
	u := url.URL{
		Scheme: "amqp",
		User:   url.UserPassword(user, password),
		Host:   fmt.Sprintf("%s:%d", Name(shop, RabbitMQ), RabbitMQPort),
		Path:   "/" + RabbitMQVhost,
	}
	return u.String()
}

// ConnectionsSecret holds the URI each service connects with: a MongoDB URI per
// service naming its own database (after mongodb.databasePrefix, when set), and the
// broker's URL, with each service's own for an in-cluster broker; and checksumKey, the key of the services' pod checksums. It fails only
// when the MongoDB URI is not one the services' driver accepts (an external URI is the
// user's input).
func ConnectionsSecret(shop *shopv1.Shop, uris StoreURIs, checksumKey []byte) (*corev1.Secret, error) {
	data := map[string][]byte{RabbitMQURLKey: []byte(uris.RabbitMQ), ChecksumKeyKey: checksumKey}
	for service, u := range uris.RabbitMQServices {
		data[RabbitMQServiceURLKey(service)] = []byte(u)
	}
	// The URI as given first: one the driver refuses may be rewritten into one it takes
	// (mongodb://u:ab@cd/ef?gh@host/, an unescaped "@", "/" and "?" in the password, would
	// become host cd, authSource ef).
	// Its options may follow the hosts without a "/" (mongodb://h?tls=true), which the driver
	// asks for and the database written here gives.
	if _, err := storeuri.ParseMongoDB(slashBeforeOptions(uris.MongoDB)); err != nil {
		return nil, fmt.Errorf("not a usable MongoDB connection string: %w", err)
	}
	for service, db := range Databases {
		if prefix := shop.Spec.MongoDB.DatabasePrefix; prefix != "" {
			db = prefix + "-" + db
		}
		uri, err := WithDatabase(uris.MongoDB, db)
		if err != nil {
			return nil, err
		}
		// As the services' driver reads it: they refuse to start with a URI it refuses.
		if _, err := storeuri.ParseMongoDB(uri); err != nil {
			return nil, fmt.Errorf("not a usable MongoDB connection string: %w", err)
		}
		data[MongoDBURIKey(service)] = []byte(uri)
	}
	return &corev1.Secret{
		ObjectMeta: objectMeta(shop, ConnectionsSecretName(shop), connections),
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}, nil
}

// slashBeforeOptions returns uri with a "/" between its hosts and its options when it has
// none there, the hosts found as the driver finds them (after the user information, up to
// the first "@").
func slashBeforeOptions(uri string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri
	}
	at := strings.Index(rest, "@") + 1 // 0 without user information
	if i := strings.IndexAny(rest[at:], "/?"); i >= 0 && rest[at+i] == '?' {
		return scheme + "://" + rest[:at+i] + "/" + rest[at+i:]
	}
	return uri
}

// WithDatabase returns the MongoDB connection string uri with db as its database.
// The string is cut by hand rather than by net/url: a MongoDB URI may list several
// hosts ("h1:27017,h2:27017"), which net/url refuses. When uri carries credentials
// and no authSource, the database they were checked against (the path, else admin) is
// kept as authSource, since the driver would otherwise check them against db.
func WithDatabase(uri, db string) (string, error) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok || (scheme != "mongodb" && scheme != "mongodb+srv") {
		return "", fmt.Errorf("not a MongoDB connection string: it must start with mongodb:// or mongodb+srv://")
	}
	// Its parts as the driver finds them: the user information up to the first "@", then
	// the hosts up to a "/" or "?".
	userinfo, hosts := "", rest
	if i := strings.Index(rest, "@"); i >= 0 {
		userinfo, hosts = rest[:i+1], rest[i+1:]
	}
	pathQuery := ""
	if i := strings.IndexAny(hosts, "/?"); i >= 0 {
		hosts, pathQuery = hosts[:i], hosts[i:]
	}
	authority := userinfo + hosts
	if authority == "" || strings.HasSuffix(authority, "@") {
		return "", fmt.Errorf("not a MongoDB connection string: it names no host")
	}
	path, query, _ := strings.Cut(strings.TrimPrefix(pathQuery, "/"), "?")
	values, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("not a MongoDB connection string: bad options: %w", err)
	}
	// The driver reads options in any case. A mechanism whose users are checked outside
	// the database ($external: AWS IAM, X.509, Kerberos, LDAP, OIDC) needs no authSource:
	// the driver gives it its own.
	hasAuthSource, external := false, false
	for k, v := range values {
		hasAuthSource = hasAuthSource || strings.EqualFold(k, "authSource")
		if strings.EqualFold(k, "authMechanism") && len(v) > 0 {
			external = slices.Contains([]string{"MONGODB-AWS", "MONGODB-X509", "GSSAPI", "PLAIN", "MONGODB-OIDC"}, strings.ToUpper(v[0]))
		}
	}
	if strings.Contains(authority, "@") && !hasAuthSource && !external {
		authDB := path
		if authDB == "" {
			authDB = "admin"
		}
		values.Set("authSource", authDB)
	}
	out := scheme + "://" + authority + "/" + db
	if len(values) > 0 {
		out += "?" + values.Encode()
	}
	return out, nil
}
