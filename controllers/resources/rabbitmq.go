package resources

import (
	"errors"
	"fmt"
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
// from its credentials Secret: the default user with its password and virtual host,
// which the broker creates when it first starts with an empty data folder, and the
// AMQP listener; and the node's environment file. The broker's management plugin is
// not configured: not every image enables it, and its keys fail where it is off.
//
// It fails when a credential cannot be written in rabbitmq.conf's format, whose
// values end at a '#' or at the end of a line and lose their outer spaces.
func RabbitMQConfigSecret(shop *shopv1.Shop, creds *corev1.Secret) (*corev1.Secret, error) {
	if err := rabbitMQCredentialsError(creds); err != nil {
		return nil, err
	}
	user, pass := string(creds.Data[UsernameKey]), string(creds.Data[PasswordKey])
	conf := fmt.Sprintf(`# Written by the Shopkeeper operator from Secret %s.
# The default user and virtual host are created at the broker's first start, when
# its data folder is empty; later starts keep the users they find.
default_user = %s
default_pass = %s
default_vhost = %s
# A user other than guest is not held to loopback anyway; this says so for any name.
loopback_users = none
listeners.tcp.default = %d
`, creds.Name, user, pass, RabbitMQVhost, RabbitMQPort) + rabbitMQMemoryWatermark(storeResources(shop.Spec.RabbitMQ.StoreSpec))
	return &corev1.Secret{
		ObjectMeta: objectMeta(shop, RabbitMQConfigSecretName(shop), RabbitMQ),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			RabbitMQConfKey: []byte(conf),
			RabbitMQEnvKey:  []byte(rabbitMQEnv),
		},
	}, nil
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
// rabbitMQ.conf's parser (rabbitMQConfValue), naming the first that does not.
func rabbitMQCredentialsError(creds *corev1.Secret) error {
	for _, key := range []string{UsernameKey, PasswordKey} {
		if err := rabbitMQConfValue(string(creds.Data[key])); err != nil {
			return fmt.Errorf("%s of Secret %s %w", key, creds.Name, err)
		}
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
