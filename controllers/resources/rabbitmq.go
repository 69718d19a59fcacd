package resources

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// Keys of the RabbitMQ configuration Secret, which are also the files' names.
const (
	// RabbitMQConfKey holds the broker's settings, in rabbitmq.conf's format.
	RabbitMQConfKey = "90-shopkeeper.conf"
	// RabbitMQEnvKey holds the node's environment, read by the server and the CLI tools.
	RabbitMQEnvKey = "rabbitmq-env.conf"
	// RabbitMQDefinitionsKey holds the definitions the broker imports at boot: its users,
	// their passwords' hashes and permissions, and the shop's virtual host.
	RabbitMQDefinitionsKey = "definitions.json"
)

// RabbitMQNodeName is the broker's Erlang node name.
const RabbitMQNodeName = "rabbit@localhost"

// rabbitMQFiles are where RabbitMQ reads the keys of its configuration Secret. Both
// are read by the official image and by Debian's package alike: every *.conf of
// conf.d after the image's own (10-defaults.conf; later files win), and the
// environment file at its default path. Nothing is passed through an image's
// entrypoint variables (RABBITMQ_DEFAULT_USER and the like).
var rabbitMQFiles = map[string]string{
	RabbitMQConfKey: "/etc/rabbitmq/conf.d/" + RabbitMQConfKey,
	RabbitMQEnvKey:  "/etc/rabbitmq/" + RabbitMQEnvKey,
	// Beside the other files, where no image keeps one of its own.
	RabbitMQDefinitionsKey: "/etc/rabbitmq/shopkeeper-" + RabbitMQDefinitionsKey,
}

// rabbitMQEnv is the node's environment file (a shell fragment; RabbitMQ adds the
// RABBITMQ_ prefix). The node name is fixed because its data lives in
// mnesia/<node name> on the volume: named after the pod's host name, which changes
// with every pod, a new pod would start empty beside the old data. LOGS=- writes the
// log to standard output only, for `kubectl logs`, on every image.
const rabbitMQEnv = `# Written by the Shopkeeper operator; read by rabbitmq-server and the CLI tools.
NODENAME=` + RabbitMQNodeName + `
LOGS=-
`

// RabbitMQConfigSecretName is the name of the broker's configuration Secret:
// <shop>-rabbitmq-config.
func RabbitMQConfigSecretName(shop *shopv1.Shop) string { return Name(shop, RabbitMQ+"-config") }

// RabbitMQConfigSecret holds the files the in-cluster broker reads at start, made
// from its credentials Secret creds and its services' users Secret users
// (RabbitMQUsersSecret): the definitions the broker imports at boot (rabbitMQDefinitions:
// the default user as the administrator for people, a user of its own for each service
// that uses AMQP, their permissions and the shop's virtual host), and the AMQP listener;
// and the node's environment file. The broker's management plugin is not configured:
// not every image enables it, and its keys fail where it is off.
//
// The users are imported whenever the definitions file differs from the one last
// imported (definitions.skip_if_unchanged), at the boot that follows the change: the
// file is in the broker pod's checksum, so it restarts once for it. An import sets each
// user's password and permissions to the file's, and leaves every other user, queue and
// message of the broker as they were, so a broker that started before the file existed
// (its default user made from default_user and default_pass, as earlier versions
// configured it) gets the services' users at its next boot and keeps its default user,
// whose password is the credentials Secret's, the one it was made with.
//
// It fails when a credential of creds is one rabbitmq.conf's format cannot carry (its
// values end at a '#' or at the end of a line and lose their outer spaces): earlier
// versions wrote the default user there, so such a value is not the one the broker was
// made with. It fails too when the default user has the name of a service's user, or a
// service's password is missing from users.
func RabbitMQConfigSecret(shop *shopv1.Shop, creds, users *corev1.Secret) (*corev1.Secret, error) {
	if err := rabbitMQCredentialsError(creds); err != nil {
		return nil, err
	}
	definitions, err := rabbitMQDefinitions(creds, users)
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`# Written by the Shopkeeper operator from Secrets %s and %s.
# The users and the virtual host are imported from the definitions file at boot when
# it differs from the one imported last; the broker keeps every other user it has.
definitions.import_backend = local_filesystem
definitions.local.path = %s
definitions.skip_if_unchanged = true
# A user other than guest is not held to loopback anyway; this says so for any name.
loopback_users = none
listeners.tcp.default = %d
`, creds.Name, users.Name, rabbitMQFiles[RabbitMQDefinitionsKey], RabbitMQPort) + rabbitMQMemoryWatermark(storeResources(shop.Spec.RabbitMQ.StoreSpec))
	return &corev1.Secret{
		ObjectMeta: objectMeta(shop, RabbitMQConfigSecretName(shop), RabbitMQ),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			RabbitMQConfKey:        []byte(conf),
			RabbitMQEnvKey:         []byte(rabbitMQEnv),
			RabbitMQDefinitionsKey: definitions,
		},
	}, nil
}

// RabbitMQPermissions are a user's permissions on a virtual host: regular expressions
// that the names of the exchanges and queues it may configure (declare, delete), write
// (publish to an exchange, or make a queue whose dead letters go to it; bind a queue)
// and read (consume a queue, or make it with a dead-letter exchange; bind from an
// exchange) must match.
type RabbitMQPermissions struct {
	Configure, Write, Read string
}

// The shop's exchanges and queues (services/internal/messaging: Exchange,
// DeadLetterExchange, ShopTopology); a test of that package holds them to its own.
var (
	rabbitMQExchanges = []string{"shop.events", "shop.events.dlx"}
	// rabbitMQWorkQueues are the work queues, each with its dead-letter queue
	// (<name>.dlq), declared with a dead-letter exchange.
	rabbitMQWorkQueues = []string{"payment.order-created", "order.payment-results"}
)

// rabbitMQShopPermissions are what a service needs that declares the shop's whole
// topology on each connection, as order and payment do (messaging.ShopTopology, so that
// a publisher finds its consumers' queue even when it starts before them), publishes to
// shop.events and consumes one work queue. RabbitMQ asks for:
//   - configure: each exchange and queue it declares, the dead-letter queues included;
//   - write: shop.events, which it publishes to; every queue it binds (all of them);
//     and shop.events.dlx, since a queue whose dead letters go there may be made
//     (declared while it does not exist: the service may be the first) only by a user
//     who may write to it;
//   - read: both exchanges, which it binds queues to; and every work queue, since a
//     queue with a dead-letter exchange may be made only by a user who may read it (so
//     the one it consumes is covered). The dead-letter queues are read by no service.
//
// So order and payment get the same permissions, and each may read the other's work
// queue: that takes services that declare only their own queues. Neither may touch a
// name outside the shop's topology (the default exchange and amq.* included), read a
// dead-letter queue, open another virtual host, or use the management plugin (no tag).
// TestRabbitMQConfigRunsABroker shows each name needed, on a broker.
func rabbitMQShopPermissions() RabbitMQPermissions {
	var queues, dlqs []string
	for _, q := range rabbitMQWorkQueues {
		queues, dlqs = append(queues, q), append(dlqs, q+".dlq")
	}
	all := slices.Concat(rabbitMQExchanges, queues, dlqs)
	return RabbitMQPermissions{
		Configure: namesPattern(all),
		Write:     namesPattern(all),
		Read:      namesPattern(slices.Concat(rabbitMQExchanges, queues)),
	}
}

// namesPattern is a regular expression matching exactly names.
func namesPattern(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(n)
	}
	return "^(" + strings.Join(quoted, "|") + ")$"
}

// RabbitMQServiceUsers are the services that use AMQP, each connecting to the
// in-cluster broker as a user named after it, with these permissions on RabbitMQVhost.
// user and product send no messages, and the gateway none either.
var RabbitMQServiceUsers = map[string]RabbitMQPermissions{
	Order:   rabbitMQShopPermissions(),
	Payment: rabbitMQShopPermissions(),
}

// rabbitMQAdminPermissions are the default user's: everything on the shop's virtual
// host, as the broker gives the default user it makes itself.
var rabbitMQAdminPermissions = RabbitMQPermissions{Configure: ".*", Write: ".*", Read: ".*"}

// rabbitMQDefinitions is the definitions file (RabbitMQ's JSON export format) of the
// users of creds and users, in one order, so that the same Secrets give the same
// bytes: the file is in the broker pod's checksum. It holds no password, only its hash
// (RabbitMQPasswordHash). The default user is in it because a broker with definitions to
// import at its first boot makes no default user nor virtual host of its own.
func rabbitMQDefinitions(creds, users *corev1.Secret) ([]byte, error) {
	type user struct {
		Name             string   `json:"name"`
		PasswordHash     string   `json:"password_hash"`
		HashingAlgorithm string   `json:"hashing_algorithm"`
		Tags             []string `json:"tags"`
	}
	type permission struct {
		User      string `json:"user"`
		Vhost     string `json:"vhost"`
		Configure string `json:"configure"`
		Write     string `json:"write"`
		Read      string `json:"read"`
	}
	type vhost struct {
		Name string `json:"name"`
	}
	var defs struct {
		Users       []user       `json:"users"`
		Vhosts      []vhost      `json:"vhosts"`
		Permissions []permission `json:"permissions"`
	}
	add := func(name, password string, tags []string, p RabbitMQPermissions) {
		defs.Users = append(defs.Users, user{name, RabbitMQPasswordHash(name, password), rabbitMQHashingAlgorithm, tags})
		defs.Permissions = append(defs.Permissions, permission{name, RabbitMQVhost, p.Configure, p.Write, p.Read})
	}
	add(string(creds.Data[UsernameKey]), string(creds.Data[PasswordKey]), []string{"administrator"}, rabbitMQAdminPermissions)
	for _, service := range slices.Sorted(maps.Keys(RabbitMQServiceUsers)) {
		password := users.Data[RabbitMQPasswordKey(service)]
		if len(password) == 0 {
			return nil, fmt.Errorf("%s of Secret %s is empty", RabbitMQPasswordKey(service), users.Name)
		}
		add(service, string(password), []string{}, RabbitMQServiceUsers[service])
	}
	defs.Vhosts = []vhost{{RabbitMQVhost}}
	out, err := json.MarshalIndent(defs, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// rabbitMQHashingAlgorithm is the hashing of the definitions' passwords: RabbitMQ's
// default since 3.6.
const rabbitMQHashingAlgorithm = "rabbit_password_hashing_sha256"

// RabbitMQPasswordHash is password's hash in RabbitMQ's format for
// rabbit_password_hashing_sha256: base64(salt ++ sha256(salt ++ password)), the salt 4
// bytes. The salt is not random but the start of an HMAC of the user's name keyed by the
// password: the same password gives the same hash, so that the definitions file, and the
// broker with it, stays as it is from one reconcile to the next; and users with one
// password get different hashes.
func RabbitMQPasswordHash(user, password string) string {
	mac := hmac.New(sha256.New, []byte(password))
	mac.Write([]byte("shopkeeper rabbitmq salt\x00" + user))
	salt := mac.Sum(nil)[:4]
	sum := sha256.Sum256(append(slices.Clone(salt), password...))
	return base64.StdEncoding.EncodeToString(append(salt, sum[:]...))
}

// rabbitMQWatermarkShare is the share of the container's memory limit at which the broker
// raises its memory alarm and blocks publishers. The alarm is a threshold, not a cap: the rest
// is room for the Erlang VM's overhead and for the garbage collector to catch up before the
// kernel kills the container.
const rabbitMQWatermarkShare = 0.5

// rabbitMQMemoryWatermark sets the broker's memory alarm from the container's memory limit,
// in rabbitmq.conf's format, or says nothing when there is no limit. Left relative, the
// threshold is a share of the memory the broker finds on the node (/proc/meminfo), not of its
// cgroup limit, so on a large node the container is killed long before the alarm would fire;
// RabbitMQ's documentation recommends an absolute threshold in containers for this reason.
func rabbitMQMemoryWatermark(r corev1.ResourceRequirements) string {
	limit, ok := r.Limits[corev1.ResourceMemory]
	if !ok || limit.Value() <= 0 {
		return ""
	}
	// The limit in one spelling per value (1073741824 and 1Gi are both 1Gi): the file is in
	// the pod's checksum, and a limit written another way must not restart the broker. The
	// shorter of its binary and decimal spellings, binary on a tie, is what a limit written
	// in either unit was spelt before (1Gi, 512Mi, 1G, 500M stay as they were).
	spelt := resource.NewQuantity(limit.Value(), resource.BinarySI).String()
	if decimal := resource.NewQuantity(limit.Value(), resource.DecimalSI).String(); len(decimal) < len(spelt) {
		spelt = decimal
	}
	return fmt.Sprintf(`# The memory alarm at half the container's %s limit: the broker would size it from the
# node's memory otherwise.
vm_memory_high_watermark.absolute = %d
`, spelt, int64(float64(limit.Value())*rabbitMQWatermarkShare))
}

// rabbitMQCredentialsError tells whether the user and password of creds survive
// rabbitMQ.conf's parser (rabbitMQConfValue), naming the first that does not, and whether
// the user is named as a service's user (RabbitMQServiceUsers), which the definitions
// cannot hold beside it: such credentials are not recovered from the connections Secret,
// so that a deleted credentials Secret is made afresh.
func rabbitMQCredentialsError(creds *corev1.Secret) error {
	for _, key := range []string{UsernameKey, PasswordKey} {
		if err := rabbitMQConfValue(string(creds.Data[key])); err != nil {
			return fmt.Errorf("%s of Secret %s %w", key, creds.Name, err)
		}
	}
	user := string(creds.Data[UsernameKey])
	if _, service := RabbitMQServiceUsers[user]; service {
		return fmt.Errorf("%s of Secret %s is %q, the name of the %s service's user", UsernameKey, creds.Name, user, user)
	}
	return nil
}

// rabbitMQConfValue tells whether v survives rabbitmq.conf's parser (cuttlefish) as
// it is: printable ASCII without '#', which starts a comment, and without outer
// spaces, which the parser trims.
func rabbitMQConfValue(v string) error {
	switch {
	case v == "":
		return errors.New("is empty")
	case strings.TrimSpace(v) != v:
		return errors.New("starts or ends with a space, which rabbitmq.conf cannot carry")
	case strings.Contains(v, "#"):
		return errors.New("holds '#', which starts a comment in rabbitmq.conf")
	}
	for _, r := range v {
		if r < ' ' || r > '~' {
			return errors.New("holds a character other than printable ASCII, which rabbitmq.conf cannot carry")
		}
	}
	return nil
}
