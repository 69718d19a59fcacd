package resources

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
)

func rabbitCreds(user, pass string) *corev1.Secret {
	s := &corev1.Secret{Data: map[string][]byte{UsernameKey: []byte(user), PasswordKey: []byte(pass)}}
	s.Name = "demo-rabbitmq-credentials"
	return s
}

func TestRabbitMQConfigSecret(t *testing.T) {
	shop := newShop()
	config := rabbitMQConfig(t, shop, rabbitCreds("shopkeeper", `p@ss:w/rd$%^&*()=\;'"x y`))
	if config.Name != "demo-rabbitmq-config" || config.Namespace != "shops" || config.Labels[LabelShop] != "demo" {
		t.Errorf("metadata %+v", config.ObjectMeta)
	}
	wantConf := `# Written by the Shopkeeper operator from Secrets demo-rabbitmq-credentials and demo-rabbitmq-users.
# The users and the virtual host are imported from the definitions file at boot when
# it differs from the one imported last; the broker keeps every other user it has.
definitions.import_backend = local_filesystem
definitions.local.path = /etc/rabbitmq/shopkeeper-definitions.json
definitions.skip_if_unchanged = true
# A user other than guest is not held to loopback anyway; this says so for any name.
loopback_users = none
listeners.tcp.default = 5672
# The memory alarm at half the container's 1Gi limit: the broker would size it from the
# node's memory otherwise.
vm_memory_high_watermark.absolute = 536870912
`
	if got := string(config.Data[RabbitMQConfKey]); got != wantConf {
		t.Errorf("%s:\n%s\nwant:\n%s", RabbitMQConfKey, got, wantConf)
	}
	if strings.Contains(string(config.Data[RabbitMQConfKey]), "p@ss") || strings.Contains(string(config.Data[RabbitMQDefinitionsKey]), "p@ss") ||
		strings.Contains(string(config.Data[RabbitMQDefinitionsKey]), "order-pw") {
		t.Error("a password is written in the broker's files, not only its hash")
	}
	wantEnv := "# Written by the Shopkeeper operator; read by rabbitmq-server and the CLI tools.\nNODENAME=rabbit@localhost\nLOGS=-\n"
	if got := string(config.Data[RabbitMQEnvKey]); got != wantEnv {
		t.Errorf("%s:\n%s\nwant:\n%s", RabbitMQEnvKey, got, wantEnv)
	}
	if len(config.Data) != 3 {
		t.Errorf("keys %v", slices.Sorted(maps.Keys(config.Data)))
	}

	var defs struct {
		Users []struct {
			Name             string
			PasswordHash     string `json:"password_hash"`
			HashingAlgorithm string `json:"hashing_algorithm"`
			Tags             []string
		}
		Vhosts      []struct{ Name string }
		Permissions []struct{ User, Vhost, Configure, Write, Read string }
	}
	if err := json.Unmarshal(config.Data[RabbitMQDefinitionsKey], &defs); err != nil {
		t.Fatal(err)
	}
	passwords := map[string]string{"shopkeeper": `p@ss:w/rd$%^&*()=\;'"x y`, Order: "order-pw", Payment: "payment-pw"}
	var names []string
	for _, u := range defs.Users {
		names = append(names, u.Name)
		if u.HashingAlgorithm != "rabbit_password_hashing_sha256" || !checkRabbitMQHash(t, u.PasswordHash, passwords[u.Name]) {
			t.Errorf("user %s: hash %s (%s) is not RabbitMQ's of its password", u.Name, u.PasswordHash, u.HashingAlgorithm)
		}
		if wantTags := map[bool][]string{true: {"administrator"}, false: {}}[u.Name == "shopkeeper"]; !slices.Equal(u.Tags, wantTags) {
			t.Errorf("user %s: tags %q, want %q", u.Name, u.Tags, wantTags)
		}
	}
	if !slices.Equal(names, []string{"shopkeeper", Order, Payment}) {
		t.Errorf("users %q", names)
	}
	if len(defs.Vhosts) != 1 || defs.Vhosts[0].Name != RabbitMQVhost {
		t.Errorf("vhosts %+v", defs.Vhosts)
	}
	wantShop := RabbitMQPermissions{
		Configure: `^(shop\.events|shop\.events\.dlx|payment\.order-created|order\.payment-results|payment\.order-created\.dlq|order\.payment-results\.dlq)$`,
		Write:     `^(shop\.events|shop\.events\.dlx|payment\.order-created|order\.payment-results|payment\.order-created\.dlq|order\.payment-results\.dlq)$`,
		Read:      `^(shop\.events|shop\.events\.dlx|payment\.order-created|order\.payment-results)$`,
	}
	want := map[string]RabbitMQPermissions{"shopkeeper": {".*", ".*", ".*"}, Order: wantShop, Payment: wantShop}
	if len(defs.Permissions) != len(want) {
		t.Errorf("permissions %+v", defs.Permissions)
	}
	for _, p := range defs.Permissions {
		if got := (RabbitMQPermissions{p.Configure, p.Write, p.Read}); p.Vhost != RabbitMQVhost || got != want[p.User] {
			t.Errorf("permissions of %s on %s: %+v, want %+v on %s", p.User, p.Vhost, got, want[p.User], RabbitMQVhost)
		}
	}

	// Rendered again from Secrets read again: the same bytes, or the broker's checksum
	// would move and restart it at every reconcile.
	again := rabbitMQConfig(t, shop, rabbitCreds("shopkeeper", `p@ss:w/rd$%^&*()=\;'"x y`))
	for key, v := range config.Data {
		if !bytes.Equal(again.Data[key], v) {
			t.Errorf("%s differs between two renders of the same Secrets: every reconcile would restart the broker", key)
		}
	}
	// Another password, another hash, and another file.
	other := rabbitUsers(shop)
	other.Data[RabbitMQPasswordKey(Order)] = []byte("new")
	if changed, err := RabbitMQConfigSecret(shop, rabbitCreds("shopkeeper", `p@ss:w/rd$%^&*()=\;'"x y`), other); err != nil ||
		bytes.Equal(changed.Data[RabbitMQDefinitionsKey], config.Data[RabbitMQDefinitionsKey]) {
		t.Errorf("a new password left the definitions as they were (%v)", err)
	}

	// A default user named as a service's user, or a password missing, is refused.
	if _, err := RabbitMQConfigSecret(shop, rabbitCreds(Order, "pw"), rabbitUsers(shop)); err == nil || !strings.Contains(err.Error(), `is "order", the name of the order service's user`) {
		t.Errorf("default user named order: %v", err)
	}
	missing := rabbitUsers(shop)
	delete(missing.Data, RabbitMQPasswordKey(Payment))
	if _, err := RabbitMQConfigSecret(shop, rabbitCreds("shopkeeper", "pw"), missing); err == nil || !strings.Contains(err.Error(), "payment-password of Secret demo-rabbitmq-users is empty") {
		t.Errorf("payment's password missing: %v", err)
	}

	refused := []struct{ name, user, pass, want string }{
		{"comment sign", "shopkeeper", "abc#def", "password of Secret demo-rabbitmq-credentials holds '#'"},
		{"leading space", " shopkeeper", "secret", "username of Secret demo-rabbitmq-credentials starts or ends with a space"},
		{"trailing tab", "shopkeeper", "secret\t", "password of Secret demo-rabbitmq-credentials starts or ends with a space"},
		{"new line", "shopkeeper", "sec\nret", "other than printable ASCII"},
		{"not ASCII", "shopkeeper", "naïve", "other than printable ASCII"},
		{"delete", "shopkeeper", "sec\x7fret", "other than printable ASCII"},
		{"empty", "", "secret", "username of Secret demo-rabbitmq-credentials is empty"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RabbitMQConfigSecret(shop, rabbitCreds(tt.user, tt.pass), rabbitUsers(shop))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.pass) && tt.pass != "" {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// checkRabbitMQHash tells whether hash is password's in RabbitMQ's
// rabbit_password_hashing_sha256 format: base64(salt ++ sha256(salt ++ password)), the
// salt 4 bytes.
func checkRabbitMQHash(t *testing.T, hash, password string) bool {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(hash)
	if err != nil || len(raw) != 4+sha256.Size {
		return false
	}
	sum := sha256.Sum256(append(slices.Clone(raw[:4]), password...))
	return bytes.Equal(raw[4:], sum[:])
}

func TestRabbitMQPasswordHash(t *testing.T) {
	h := RabbitMQPasswordHash("order", "secret")
	if !checkRabbitMQHash(t, h, "secret") || checkRabbitMQHash(t, h, "secreT") {
		t.Errorf("hash %s", h)
	}
	if RabbitMQPasswordHash("order", "secret") != h {
		t.Error("the same user and password gave another hash")
	}
	if RabbitMQPasswordHash("payment", "secret") == h {
		t.Error("two users with one password got one hash: the salt does not depend on the user")
	}
}

func TestRabbitMQUsersSecret(t *testing.T) {
	shop := newShop()
	fresh := RabbitMQUsersSecret(shop, nil)
	if fresh.Name != "demo-rabbitmq-users" || fresh.Labels[LabelShop] != "demo" || fresh.Immutable != nil {
		t.Errorf("metadata %+v, immutable %v", fresh.ObjectMeta, fresh.Immutable)
	}
	if keys := slices.Sorted(maps.Keys(fresh.Data)); !slices.Equal(keys, []string{"order-password", "payment-password"}) {
		t.Errorf("keys %q", keys)
	}
	if string(fresh.Data["order-password"]) == string(fresh.Data["payment-password"]) || len(fresh.Data["order-password"]) < 26 {
		t.Errorf("passwords not random: %q", fresh.Data)
	}
	if again := RabbitMQUsersSecret(shop, nil); string(again.Data["order-password"]) == string(fresh.Data["order-password"]) {
		t.Error("two new Secrets got one password")
	}
	// An existing Secret keeps its values; a missing or empty one is made, other keys go.
	existing := &corev1.Secret{Data: map[string][]byte{"order-password": []byte("kept"), "payment-password": nil, "stray": []byte("x")}}
	got := RabbitMQUsersSecret(shop, existing)
	if string(got.Data["order-password"]) != "kept" || len(got.Data["payment-password"]) == 0 || got.Data["stray"] != nil {
		t.Errorf("from %q: %q", existing.Data, got.Data)
	}
	if string(existing.Data["order-password"]) != "kept" || existing.Data["payment-password"] != nil {
		t.Error("the existing Secret was changed")
	}
	// An empty value, as the API server gives back a key set to "", is made too: the broker's
	// definitions cannot hold an empty password (RabbitMQConfigSecret refuses it).
	emptied := &corev1.Secret{Data: map[string][]byte{"order-password": {}, "payment-password": []byte("kept")}}
	if got := RabbitMQUsersSecret(shop, emptied); len(got.Data["order-password"]) == 0 || string(got.Data["payment-password"]) != "kept" {
		t.Errorf("from %q: %q", emptied.Data, got.Data)
	}
}

func TestStoreChecksumFollowsItsFiles(t *testing.T) {
	shop := newShop()
	config := func(pass string) *corev1.Secret { return rabbitMQConfig(t, shop, rabbitCreds("shopkeeper", pass)) }
	sum := func(read *corev1.Secret) string {
		return StoreStatefulSet(shop, RabbitMQ, read).Spec.Template.Annotations[ChecksumAnnotation]
	}
	// Two builds from equal inputs: a checksum that moved would roll the pods on every reconcile.
	if first, again := sum(config("one")), sum(config("one")); first != again {
		t.Errorf("checksum not stable: %s, then %s", first, again)
	}
	if sum(config("one")) == sum(config("two")) {
		t.Error("a new password in the files left the pods as they are")
	}
	changedEnv := config("one")
	changedEnv.Data[RabbitMQEnvKey] = []byte("NODENAME=other@localhost\n")
	if sum(config("one")) == sum(changedEnv) {
		t.Error("a new environment file left the pods as they are")
	}
}

func TestStorePodsAreRestricted(t *testing.T) {
	for _, engine := range []shopv1.MongoDBEngine{shopv1.EngineMongoDB, shopv1.EngineFerretDB} {
		shop := newShop(func(s *shopv1.Shop) { s.Spec.MongoDB.Engine = engine })
		for _, name := range InClusterStores(shop) {
			p := StoreStatefulSet(shop, name, nil).Spec.Template.Spec
			sc, c := p.SecurityContext, p.Containers[0].SecurityContext
			if !*sc.RunAsNonRoot || *sc.RunAsUser == 0 || *sc.FSGroupChangePolicy != corev1.FSGroupChangeOnRootMismatch ||
				sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || *p.AutomountServiceAccountToken {
				t.Errorf("%s %s: pod security %+v", engine, name, sc)
			}
			if *c.AllowPrivilegeEscalation || !*c.ReadOnlyRootFilesystem || len(c.Capabilities.Drop) != 1 || c.Capabilities.Drop[0] != "ALL" {
				t.Errorf("%s %s: container security %+v", engine, name, c)
			}
		}
	}
}

func TestRabbitMQMemoryWatermark(t *testing.T) {
	tests := []struct {
		name      string
		resources corev1.ResourceRequirements
		want      string
	}{
		{name: "the default limit", resources: defaultStoreResources, want: "vm_memory_high_watermark.absolute = 536870912\n"},
		{name: "a limit of 3Gi", resources: requirements("1", "2Gi", "3Gi"), want: "vm_memory_high_watermark.absolute = 1610612736\n"},
		{name: "no limit: the broker's own default", resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}},
	}
	for _, tt := range tests {
		got := rabbitMQMemoryWatermark(tt.resources)
		if tt.want == "" && got != "" || tt.want != "" && !strings.HasSuffix(got, tt.want) {
			t.Errorf("%s: %q, want it to end in %q", tt.name, got, tt.want)
		}
	}
	// The configuration is in the broker pod's checksum: a limit written another way is the
	// same file, so the broker does not restart for it.
	for _, same := range [][2]string{{"1Gi", "1073741824"}, {"1536Mi", "1.5Gi"}, {"1G", "1000M"}, {"2G", "2000000000"}} {
		a := rabbitMQMemoryWatermark(requirements("1", "1Gi", same[0]))
		b := rabbitMQMemoryWatermark(requirements("1", "1Gi", same[1]))
		if a != b {
			t.Errorf("limits %s and %s give different files:\n%s\n%s", same[0], same[1], a, b)
		}
	}
	// A limit in its usual spelling, binary or decimal, is written as before: an upgrade of
	// the operator does not restart the broker.
	for _, limit := range []string{"1Gi", "512Mi", "1000Mi", "1536Mi", "1G", "2G", "500M"} {
		if got := rabbitMQMemoryWatermark(requirements("1", "256Mi", limit)); !strings.Contains(got, "container's "+limit+" limit") {
			t.Errorf("limit %s written %q", limit, got)
		}
	}
	// A tie, 9875Ki and 10112k alike six characters, is written binary, as the comment says.
	for _, limit := range []string{"9875Ki", "10112k"} {
		if got := rabbitMQMemoryWatermark(requirements("1", "1Mi", limit)); !strings.Contains(got, "container's 9875Ki limit") {
			t.Errorf("limit %s written %q", limit, got)
		}
	}
}

// rabbitMQScripts is where Debian's rabbitmq-server package keeps the scripts the
// local cluster's image runs (its entrypoint is rabbitmq-server there).
const rabbitMQScripts = "/usr/lib/rabbitmq/bin"

// rabbitMQNode is a broker the test started from a configuration Secret (bootBroker).
type rabbitMQNode struct {
	root     string   // the pod's file system, moved under a temporary folder
	env      []string // the node's environment, for the CLI tools too
	amqpPort int
	stdout   string // the node's log
	node     *testproc.Process
	epmd     *testproc.Process
}

// bootBroker starts the broker installed on this machine (Debian's rabbitmq-server, the
// one the local cluster's image holds) with the files of the configuration Secret config
// laid out under root where the StatefulSet mounts them, and waits until user (with
// password) may connect to the shop's virtual host. Only what keeps the node private to
// the test is added: its folders live under root, and its ports are free loopback ones
// (a conf.d file sorted after ours moves the listener, and the definitions file's path
// under root). The official image's conf.d/10-defaults.conf is there too, as it is in
// that image. A root booted before keeps its data folder, as the broker's volume does.
func bootBroker(t *testing.T, shop *shopv1.Shop, config *corev1.Secret, root, user, password string) *rabbitMQNode {
	t.Helper()
	d := StoreStatefulSet(shop, RabbitMQ, config)
	in := func(path string) string { return filepath.Join(root, path) }
	for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.SubPath == "" {
			mustMkdir(t, in(m.MountPath))
			continue
		}
		mustMkdir(t, filepath.Dir(in(m.MountPath)))
		_ = os.Remove(in(m.MountPath)) // a file of an earlier boot, read-only
		if err := os.WriteFile(in(m.MountPath), config.Data[m.SubPath], 0o440); err != nil {
			t.Fatal(err)
		}
	}
	// The official image's own conf.d file, which ours must leave in place and agree with.
	imageDefaults := "loopback_users.guest = false\nlog.console = true\n"
	ports, err := testproc.FreeLoopbackPorts(3)
	if err != nil {
		t.Fatal(err)
	}
	amqpPort, distPort, epmdPort := ports[0], ports[1], ports[2]
	override := "listeners.tcp.default = 127.0.0.1:" + strconv.Itoa(amqpPort) + "\n"
	if _, ok := config.Data[RabbitMQDefinitionsKey]; ok {
		override += "definitions.local.path = " + in(rabbitMQFiles[RabbitMQDefinitionsKey]) + "\n"
	}
	for name, content := range map[string]string{"10-defaults.conf": imageDefaults, "99-test-overrides.conf": override} {
		path := in("/etc/rabbitmq/conf.d/" + name)
		_ = os.Remove(path)
		if err := os.WriteFile(path, []byte(content), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	n := &rabbitMQNode{root: root, amqpPort: amqpPort, stdout: filepath.Join(root, "stdout.log")}
	n.env = []string{
		"PATH=" + os.Getenv("PATH"),
		// What the local cluster's image sets.
		"LANG=C.UTF-8",
		"HOME=" + in("/var/lib/rabbitmq"),
		// The image's default locations, moved under root.
		"RABBITMQ_CONF_ENV_FILE=" + in("/etc/rabbitmq/rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILES=" + in("/etc/rabbitmq/conf.d"),
		"RABBITMQ_CONFIG_FILE=" + in("/etc/rabbitmq/rabbitmq"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + in("/etc/rabbitmq/advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + in("/etc/rabbitmq/enabled_plugins"),
		"RABBITMQ_MNESIA_BASE=" + in("/var/lib/rabbitmq/mnesia"),
		"RABBITMQ_LOG_BASE=" + in("/var/log/rabbitmq"),
		// Private ports, on loopback.
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(distPort),
		"ERL_EPMD_PORT=" + strconv.Itoa(epmdPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
	}
	epmd := exec.Command("epmd", "-port", strconv.Itoa(epmdPort), "-address", "127.0.0.1")
	epmd.Env = n.env
	if n.epmd, err = testproc.Start(epmd, filepath.Join(root, "epmd.log")); err != nil {
		t.Fatal(err)
	}
	node := exec.Command(filepath.Join(rabbitMQScripts, "rabbitmq-server"))
	node.Env, node.Dir = n.env, root
	if n.node, err = testproc.Start(node, n.stdout); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.stop)

	for deadline := time.Now().Add(3 * time.Minute); ; {
		conn, err := amqp.Dial(n.url(user, password, RabbitMQVhost))
		if err == nil {
			_ = conn.Close()
			return n
		}
		select {
		case <-n.node.Done():
			t.Fatalf("rabbitmq-server exited during start:\n%s", readFile(t, n.stdout))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is refused after 3m: %v\n%s", user, err, readFile(t, n.stdout))
		}
	}
}

// url is the AMQP URL of the node's virtual host vhost for user.
func (n *rabbitMQNode) url(user, password, vhost string) string {
	u := url.URL{Scheme: "amqp", User: url.UserPassword(user, password), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(n.amqpPort)), Path: "/" + vhost}
	return u.String()
}

// stop stops the node and its epmd; the data folder stays.
func (n *rabbitMQNode) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = n.node.Stop(ctx)
	_ = n.epmd.Stop(ctx)
}

// ctl runs a CLI tool of the broker (rabbitmqctl, rabbitmq-diagnostics) against the node.
func (n *rabbitMQNode) ctl(t *testing.T, tool string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(rabbitMQScripts, tool), args...)
	cmd.Env = n.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
	return string(out)
}

// TestRabbitMQConfigRunsABroker boots a broker with the files of the configuration
// Secret (bootBroker) and connects the way the services do.
func TestRabbitMQConfigRunsABroker(t *testing.T) {
	requireRabbitMQServer(t)
	shop := newShop()
	creds := CredentialsSecret(shop, RabbitMQ, nil)
	users := RabbitMQUsersSecret(shop, nil)
	config, err := RabbitMQConfigSecret(shop, creds, users)
	if err != nil {
		t.Fatal(err)
	}
	admin, adminPassword := string(creds.Data[UsernameKey]), string(creds.Data[PasswordKey])
	n := bootBroker(t, shop, config, t.TempDir(), admin, adminPassword)
	in := func(path string) string { return filepath.Join(n.root, path) }

	// The URL the default user has, pointed at the private listener.
	u, err := url.Parse(InClusterRabbitMQURL(shop, creds))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(n.amqpPort))
	conn, err := amqp.Dial(u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()

	t.Run("the default user works in the shop's virtual host", func(t *testing.T) {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		q, err := ch.QueueDeclare("orders", true, false, false, false, nil)
		if err != nil {
			t.Fatalf("declare a queue: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte("order 1")}); err != nil {
			t.Fatal(err)
		}
		for {
			msg, ok, err := ch.Get(q.Name, true)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				if string(msg.Body) != "order 1" {
					t.Errorf("got %q", msg.Body)
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatal("the message published never arrived")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("the users are the definitions' and the default user is the administrator", func(t *testing.T) {
		out := n.ctl(t, "rabbitmqctl", "-q", "list_users")
		for _, want := range []string{admin + "\t[administrator]", "order\t[]", "payment\t[]"} {
			if !strings.Contains(out, want) {
				t.Errorf("list_users lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "guest") {
			t.Errorf("guest is a user:\n%s", out)
		}
		perms := n.ctl(t, "rabbitmqctl", "-q", "list_permissions", "-p", RabbitMQVhost)
		for service, p := range RabbitMQServiceUsers {
			if want := strings.Join([]string{service, p.Configure, p.Write, p.Read}, "\t"); !strings.Contains(perms, want) {
				t.Errorf("list_permissions lacks %q:\n%s", want, perms)
			}
		}
		if vhosts := n.ctl(t, "rabbitmqctl", "-q", "list_vhosts"); strings.TrimSpace(vhosts) != "name\n"+RabbitMQVhost {
			t.Errorf("virtual hosts %q, want the shop's alone", vhosts)
		}
	})

	for _, service := range slices.Sorted(maps.Keys(RabbitMQServiceUsers)) {
		t.Run(service+"'s user does what the service does, and nothing else", func(t *testing.T) {
			serviceURL, err := url.Parse(InClusterRabbitMQServiceURLs(shop, users)[service])
			if err != nil {
				t.Fatal(err)
			}
			serviceURL.Host = u.Host
			checkServiceUser(t, serviceURL.String(), service)
		})
	}

	t.Run("each name the services' permissions grant is needed", func(t *testing.T) {
		// Order's user with one name fewer in one of its permissions cannot do order's work;
		// payment's permissions are the same.
		if RabbitMQServiceUsers[Order] != RabbitMQServiceUsers[Payment] {
			t.Fatal("order's and payment's permissions differ: test each")
		}
		orderURL, err := url.Parse(InClusterRabbitMQServiceURLs(shop, users)[Order])
		if err != nil {
			t.Fatal(err)
		}
		orderURL.Host = u.Host
		granted := RabbitMQServiceUsers[Order]
		set := func(p RabbitMQPermissions) {
			n.ctl(t, "rabbitmqctl", "-q", "set_permissions", "-p", RabbitMQVhost, Order, p.Configure, p.Write, p.Read)
		}
		defer set(granted)
		all := slices.Concat(rabbitMQExchanges, rabbitMQWorkQueues, []string{rabbitMQWorkQueues[0] + ".dlq", rabbitMQWorkQueues[1] + ".dlq"})
		for _, kind := range []string{"configure", "write", "read"} {
			names := all
			if kind == "read" {
				names = slices.Concat(rabbitMQExchanges, rabbitMQWorkQueues)
			}
			if p := map[string]string{"configure": granted.Configure, "write": granted.Write, "read": granted.Read}[kind]; p != namesPattern(names) {
				t.Fatalf("%s is %s, not the names tested", kind, p)
			}
			for _, name := range names {
				fewer := granted
				pattern := namesPattern(slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == name }))
				switch kind {
				case "configure":
					fewer.Configure = pattern
				case "write":
					fewer.Write = pattern
				case "read":
					fewer.Read = pattern
				}
				set(fewer)
				// The first declaration of a queue with a dead-letter exchange is what asks
				// for read on the queue and write on that exchange: the queues go first.
				ch, err := conn.Channel()
				if err != nil {
					t.Fatal(err)
				}
				for _, q := range slices.Concat(rabbitMQWorkQueues, []string{rabbitMQWorkQueues[0] + ".dlq", rabbitMQWorkQueues[1] + ".dlq"}) {
					if _, err := ch.QueueDelete(q, false, false, false); err != nil {
						t.Fatal(err)
					}
				}
				_ = ch.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				conn, err := serviceWork(ctx, orderURL.String(), Order)
				cancel()
				var amqpErr *amqp.Error
				switch {
				case err == nil:
					_ = conn.Close()
					t.Errorf("without %s on %s, order's work is done all the same", kind, name)
				case !errors.As(err, &amqpErr) || amqpErr.Code != amqp.AccessRefused:
					t.Errorf("without %s on %s: %v, want ACCESS_REFUSED", kind, name, err)
				default:
					t.Logf("without %s on %s: %v", kind, name, err)
				}
			}
		}
	})

	t.Run("guest is gone", func(t *testing.T) {
		guest := *u
		guest.User, guest.Path = url.UserPassword("guest", "guest"), "/"
		c, err := amqp.Dial(guest.String())
		if err == nil {
			_ = c.Close()
			t.Fatal("guest logged in: the default user was not replaced")
		}
		if !errors.Is(err, amqp.ErrCredentials) && !strings.Contains(err.Error(), "ACCESS_REFUSED") {
			t.Errorf("guest refused with %v, want bad credentials", err)
		}
	})

	t.Run("the node is named by the environment file, and logs to standard output only", func(t *testing.T) {
		if _, err := os.Stat(in("/var/lib/rabbitmq/mnesia/" + RabbitMQNodeName)); err != nil {
			t.Errorf("data folder: %v", err)
		}
		logs, err := os.ReadDir(in("/var/log/rabbitmq"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range logs {
			if info, err := f.Info(); err != nil || info.Size() > 0 {
				t.Errorf("%s in the log folder is not empty (%v): logs must go to standard output", f.Name(), err)
			}
		}
		if out := readFile(t, n.stdout); !strings.Contains(out, "node           : "+RabbitMQNodeName) || !strings.Contains(out, "Server startup complete") {
			t.Errorf("standard output lacks the node's log:\n%s", out)
		}
	})

	t.Run("the memory alarm is half the container's memory limit", func(t *testing.T) {
		out := n.ctl(t, "rabbitmqctl", "-q", "eval", "vm_memory_monitor:get_memory_limit().")
		want := defaultStoreResources.Limits.Memory().Value() / 2
		if got := strings.TrimSpace(out); got != strconv.FormatInt(want, 10) {
			t.Errorf("memory limit %s, want %d", got, want)
		}
	})

	t.Run("the CLI tools find the node through the environment file", func(t *testing.T) {
		n.ctl(t, "rabbitmq-diagnostics", "-q", "ping")
	})
}

// serviceWork connects to amqpURL as service's user and does what the service does
// (services/internal/messaging): declare the shop's topology as Topology.declare does,
// publish events to shop.events (what the service publishes, and what it consumes), and
// consume its own work queue. It returns the connection, open, for more.
func serviceWork(ctx context.Context, amqpURL, service string) (*amqp.Connection, error) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := serviceWorkOn(ctx, conn, service); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

func serviceWorkOn(ctx context.Context, conn *amqp.Connection, service string) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }()
	for _, e := range rabbitMQExchanges {
		if err := ch.ExchangeDeclare(e, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %s: %w", e, err)
		}
	}
	keys := map[string][]string{"payment.order-created": {"order.created"}, "order.payment-results": {"payment.succeeded", "payment.failed"}}
	for _, q := range rabbitMQWorkQueues {
		dlq := q + ".dlq"
		if _, err := ch.QueueDeclare(dlq, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}); err != nil {
			return fmt.Errorf("declare %s: %w", dlq, err)
		}
		if err := ch.QueueBind(dlq, q, rabbitMQExchanges[1], false, nil); err != nil {
			return fmt.Errorf("bind %s: %w", dlq, err)
		}
		if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{
			amqp.QueueTypeArg: amqp.QueueTypeQuorum, "x-delivery-limit": int64(10),
			"x-dead-letter-exchange": rabbitMQExchanges[1], "x-dead-letter-routing-key": q,
		}); err != nil {
			return fmt.Errorf("declare %s: %w", q, err)
		}
		for _, key := range keys[q] {
			if err := ch.QueueBind(q, key, rabbitMQExchanges[0], false, nil); err != nil {
				return fmt.Errorf("bind %s to %s: %w", q, key, err)
			}
		}
	}
	own, event := serviceQueue(service), map[string]string{Order: "payment.succeeded", Payment: "order.created"}[service]
	published := map[string]string{Order: "order.created", Payment: "payment.succeeded"}[service]
	if err := ch.Confirm(false); err != nil {
		return err
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	for _, key := range []string{published, event} {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, rabbitMQExchanges[0], key, true, false, amqp.Publishing{Body: []byte(key)})
		if err != nil {
			return fmt.Errorf("publish %s: %w", key, err)
		}
		if ok, err := dc.WaitContext(ctx); !ok || err != nil {
			// A publish refused closes the channel: its reason is the error.
			select {
			case cerr := <-closed:
				return fmt.Errorf("publish %s: %w", key, cerr)
			case <-ctx.Done():
			}
			if err != nil {
				return fmt.Errorf("publish %s not confirmed: %w", key, err)
			}
			return fmt.Errorf("publish %s not confirmed", key)
		}
	}
	deliveries, err := ch.Consume(own, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", own, err)
	}
	for {
		select {
		case d := <-deliveries:
			if err := d.Ack(false); err != nil {
				return err
			}
			if string(d.Body) == event {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("nothing consumed from %s: %w", own, ctx.Err())
		}
	}
}

// serviceQueue is the work queue service consumes.
func serviceQueue(service string) string {
	return map[string]string{Order: "order.payment-results", Payment: "payment.order-created"}[service]
}

// checkServiceUser does service's work as its user (serviceWork), then what the service
// must not do.
func checkServiceUser(t *testing.T, amqpURL, service string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := serviceWork(ctx, amqpURL, service)
	if err != nil {
		t.Fatalf("%s's user: %v", service, err)
	}
	defer func() { _ = conn.Close() }()
	channel := func() *amqp.Channel {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	own := serviceQueue(service)
	// Each refusal closes its channel: one channel each.
	refused := func(what string, do func(ch *amqp.Channel) error) {
		t.Helper()
		err := do(channel())
		var amqpErr *amqp.Error
		if !errors.As(err, &amqpErr) || amqpErr.Code != amqp.AccessRefused {
			t.Errorf("%s: %v, want ACCESS_REFUSED", what, err)
		}
	}
	refused("declare a queue outside the topology", func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare("other", true, false, false, false, nil)
		return err
	})
	refused("declare an exchange outside the topology", func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare("other", amqp.ExchangeTopic, true, false, false, false, nil)
	})
	// A publish refused closes the channel, which is how the client learns of it.
	publish := func(exchange, key string) func(ch *amqp.Channel) error {
		return func(ch *amqp.Channel) error {
			closed := ch.NotifyClose(make(chan *amqp.Error, 1))
			if err := ch.PublishWithContext(ctx, exchange, key, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
				return err
			}
			select {
			case err := <-closed:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	refused("publish to the default exchange", publish("", own))
	refused("publish to amq.topic", publish("amq.topic", "x"))
	for _, q := range rabbitMQWorkQueues {
		refused("consume "+q+".dlq", func(ch *amqp.Channel) error {
			_, _, err := ch.Get(q+".dlq", false)
			return err
		})
	}
	base, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	base.Path = "/"
	if c, err := amqp.Dial(base.String()); err == nil {
		_ = c.Close()
		t.Errorf("%s's user opened the default virtual host", service)
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// requireRabbitMQServer fails the test when rabbitmq-server is not installed.
func requireRabbitMQServer(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(rabbitMQScripts, "rabbitmq-server")); err != nil {
		t.Fatalf("rabbitmq-server is not installed (hack/install-rabbitmq.sh; make test runs it): %v", err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRabbitMQUpgradeGetsTheUsers boots a broker as an earlier version of the operator
// configured it (a default user and virtual host made at the first boot, no definitions),
// with a queue holding a message, then again on the same data folder with this version's
// files: the broker gets the services' users and keeps its default user, its password
// and its messages. A third boot with the same files imports nothing (skip_if_unchanged):
// a user a person made meanwhile stays.
func TestRabbitMQUpgradeGetsTheUsers(t *testing.T) {
	requireRabbitMQServer(t)
	shop := newShop()
	creds := CredentialsSecret(shop, RabbitMQ, nil)
	admin, adminPassword := string(creds.Data[UsernameKey]), string(creds.Data[PasswordKey])
	root := t.TempDir()

	// The files of the version before the service users, as it wrote them.
	earlier := &corev1.Secret{Data: map[string][]byte{
		RabbitMQConfKey: []byte(fmt.Sprintf("default_user = %s\ndefault_pass = %s\ndefault_vhost = %s\nloopback_users = none\nlisteners.tcp.default = %d\n",
			admin, adminPassword, RabbitMQVhost, RabbitMQPort)),
		RabbitMQEnvKey: []byte(rabbitMQEnv),
	}}
	n := bootBroker(t, shop, earlier, root, admin, adminPassword)
	adminURL := n.url(admin, adminPassword, RabbitMQVhost)
	conn, err := amqp.Dial(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("kept", true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "kept", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("before")})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("not confirmed: %v", err)
	}
	_ = conn.Close()
	if out := n.ctl(t, "rabbitmqctl", "-q", "list_users"); strings.Contains(out, "order") {
		t.Fatalf("the earlier files made service users:\n%s", out)
	}
	n.stop()

	users := RabbitMQUsersSecret(shop, nil)
	config, err := RabbitMQConfigSecret(shop, creds, users)
	if err != nil {
		t.Fatal(err)
	}
	n = bootBroker(t, shop, config, root, admin, adminPassword) // returns once the default user connects
	adminURL = n.url(admin, adminPassword, RabbitMQVhost)
	if out := n.ctl(t, "rabbitmqctl", "-q", "list_users"); !strings.Contains(out, admin+"\t[administrator]") {
		t.Errorf("the default user lost its tag:\n%s", out)
	}
	conn, err = amqp.Dial(adminURL)
	if err != nil {
		t.Fatalf("the default user with its password: %v", err)
	}
	ch, err = conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if msg, ok, err := ch.Get("kept", true); err != nil || !ok || string(msg.Body) != "before" {
		t.Errorf("the message of the earlier boot: %q, %v, %v", msg.Body, ok, err)
	}
	_ = conn.Close()
	for service, serviceURL := range InClusterRabbitMQServiceURLs(shop, users) {
		u, err := url.Parse(serviceURL)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(n.amqpPort))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := serviceWork(ctx, u.String(), service)
		cancel()
		if err != nil {
			t.Fatalf("%s's user after the upgrade: %v", service, err)
		}
		_ = conn.Close()
	}

	// A person's user, and a password changed by hand, stay over a boot with the same files.
	n.ctl(t, "rabbitmqctl", "-q", "add_user", "person", "person-pw")
	n.ctl(t, "rabbitmqctl", "-q", "change_password", Payment, "changed")
	n.stop()
	n = bootBroker(t, shop, config, root, admin, adminPassword)
	if out := n.ctl(t, "rabbitmqctl", "-q", "list_users"); !strings.Contains(out, "person") {
		t.Errorf("a boot with the same files dropped a person's user:\n%s", out)
	}
	if c, err := amqp.Dial(n.url(Payment, "changed", RabbitMQVhost)); err != nil {
		t.Errorf("a boot with the same files imported them again: %v", err)
	} else {
		_ = c.Close()
	}

	// A password edited in the users Secret reaches the broker at the boot its files bring.
	users.Data[RabbitMQPasswordKey(Payment)] = []byte("edited")
	if config, err = RabbitMQConfigSecret(shop, creds, users); err != nil {
		t.Fatal(err)
	}
	n.stop()
	n = bootBroker(t, shop, config, root, admin, adminPassword)
	if c, err := amqp.Dial(n.url(Payment, "edited", RabbitMQVhost)); err != nil {
		t.Errorf("the edited password: %v", err)
	} else {
		_ = c.Close()
	}
}

func TestConnectionsSecretCarriesTheServicesBrokerURLs(t *testing.T) {
	shop := newShop()
	creds := rabbitCreds("shopkeeper", "admin-pw")
	conn, err := ConnectionsSecret(shop, StoreURIs{MongoDB: "mongodb://db/", RabbitMQ: InClusterRabbitMQURL(shop, creds),
		RabbitMQServices: InClusterRabbitMQServiceURLs(shop, rabbitUsers(shop))}, []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"rabbitmq-url":         "amqp://shopkeeper:admin-pw@demo-rabbitmq:5672/shop",
		"order-rabbitmq-url":   "amqp://order:order-pw@demo-rabbitmq:5672/shop",
		"payment-rabbitmq-url": "amqp://payment:payment-pw@demo-rabbitmq:5672/shop",
	}
	for k, v := range want {
		if got := string(conn.Data[k]); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// The default user's URL is not a service's: a deleted credentials Secret is made
	// again from it, and nothing else reads it.
	if got := CredentialsFromConnections(shop, RabbitMQ, conn); string(got[PasswordKey]) != "admin-pw" {
		t.Errorf("credentials recovered %q", got)
	}
	for _, service := range []string{Order, Payment} {
		if k := RabbitMQURLKeyFor(shop, service); k != RabbitMQServiceURLKey(service) {
			t.Errorf("%s reads %s", service, k)
		}
	}
	// An external broker: one URL, the Shop's, read by both.
	external := newShop(func(s *shopv1.Shop) {
		s.Spec.RabbitMQ.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "broker", Key: "url"}}
	})
	conn, err = ConnectionsSecret(external, StoreURIs{MongoDB: "mongodb://db/", RabbitMQ: "amqp://u:p@broker.example:5672/"}, []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	if len(conn.Data) != 2+len(Databases) || string(conn.Data[RabbitMQURLKey]) != "amqp://u:p@broker.example:5672/" {
		t.Errorf("external broker's connections %q", slices.Sorted(maps.Keys(conn.Data)))
	}
	for _, service := range []string{Order, Payment} {
		if k := RabbitMQURLKeyFor(external, service); k != RabbitMQURLKey {
			t.Errorf("%s reads %s from an external broker's connections", service, k)
		}
	}
}
