package resources

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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
	wantConf := `# Written by the Shopkeeper operator from Secret demo-rabbitmq-credentials.
# The default user and virtual host are created at the broker's first start, when
# its data folder is empty; later starts keep the users they find.
default_user = shopkeeper
default_pass = p@ss:w/rd$%^&*()=\;'"x y
default_vhost = shop
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
	wantEnv := "# Written by the Shopkeeper operator; read by rabbitmq-server and the CLI tools.\nNODENAME=rabbit@localhost\nLOGS=-\n"
	if got := string(config.Data[RabbitMQEnvKey]); got != wantEnv {
		t.Errorf("%s:\n%s\nwant:\n%s", RabbitMQEnvKey, got, wantEnv)
	}
	if len(config.Data) != 2 {
		t.Errorf("keys %v", config.Data)
	}
	if again := rabbitMQConfig(t, shop, rabbitCreds("shopkeeper", `p@ss:w/rd$%^&*()=\;'"x y`)); string(again.Data[RabbitMQConfKey]) != wantConf {
		t.Error("the same credentials gave another file: every reconcile would roll the broker")
	}

	refused := []struct{ name, user, pass, want string }{
		{"comment sign", "shopkeeper", "abc#def", "password of Secret demo-rabbitmq-credentials holds '#'"},
		{"leading space", " shopkeeper", "secret", "username of Secret demo-rabbitmq-credentials starts or ends with a space"},
		{"trailing tab", "shopkeeper", "secret\t", "password of Secret demo-rabbitmq-credentials starts or ends with a space"},
		{"new line", "shopkeeper", "sec\nret", "other than printable ASCII"},
		{"not ASCII", "shopkeeper", "naïve", "other than printable ASCII"},
		{"empty", "", "secret", "username of Secret demo-rabbitmq-credentials is empty"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RabbitMQConfigSecret(shop, rabbitCreds(tt.user, tt.pass))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.pass) && tt.pass != "" {
				t.Errorf("error %q shows the password", err)
			}
		})
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
}

// rabbitMQScripts is where Debian's rabbitmq-server package keeps the scripts the
// local cluster's image runs (its entrypoint is rabbitmq-server there).
const rabbitMQScripts = "/usr/lib/rabbitmq/bin"

// TestRabbitMQConfigRunsABroker starts the broker installed on this machine (Debian's
// rabbitmq-server, the one the local cluster's image holds) with the files of the
// configuration Secret laid out where the StatefulSet mounts them, and connects the
// way the services do. Only what keeps the node private to the test is added: its
// folders live under a temporary root, and its ports are free loopback ones (a
// conf.d file sorted after ours moves the listener). The official image's
// conf.d/10-defaults.conf is there too, as it is in that image.
func TestRabbitMQConfigRunsABroker(t *testing.T) {
	if _, err := os.Stat(filepath.Join(rabbitMQScripts, "rabbitmq-server")); err != nil {
		t.Fatalf("rabbitmq-server is not installed (hack/install-rabbitmq.sh; make test runs it): %v", err)
	}
	shop := newShop()
	creds := CredentialsSecret(shop, RabbitMQ, nil)
	config := rabbitMQConfig(t, shop, creds)
	d := StoreStatefulSet(shop, RabbitMQ, config)

	root := t.TempDir()
	in := func(path string) string { return filepath.Join(root, path) }
	for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.SubPath == "" {
			mustMkdir(t, in(m.MountPath))
			continue
		}
		mustMkdir(t, filepath.Dir(in(m.MountPath)))
		if err := os.WriteFile(in(m.MountPath), config.Data[m.SubPath], 0o440); err != nil {
			t.Fatal(err)
		}
	}
	// The official image's own conf.d file, which ours must leave in place and agree with.
	imageDefaults := "loopback_users.guest = false\nlog.console = true\n"
	if err := os.WriteFile(in("/etc/rabbitmq/conf.d/10-defaults.conf"), []byte(imageDefaults), 0o444); err != nil {
		t.Fatal(err)
	}
	ports, err := testproc.FreeLoopbackPorts(3)
	if err != nil {
		t.Fatal(err)
	}
	amqpPort, distPort, epmdPort := ports[0], ports[1], ports[2]
	listener := "listeners.tcp.default = 127.0.0.1:" + strconv.Itoa(amqpPort) + "\n"
	if err := os.WriteFile(in("/etc/rabbitmq/conf.d/99-test-listener.conf"), []byte(listener), 0o444); err != nil {
		t.Fatal(err)
	}
	env := []string{
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
	epmd.Env = env
	startProcess(t, epmd, filepath.Join(root, "epmd.log"), 5*time.Second)
	node := exec.Command(filepath.Join(rabbitMQScripts, "rabbitmq-server"))
	node.Env, node.Dir = env, root
	stdout := filepath.Join(root, "stdout.log")
	exited := startProcess(t, node, stdout, time.Minute)

	// The URL the services get, pointed at the private listener.
	u, err := url.Parse(InClusterRabbitMQURL(shop, creds))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(amqpPort))
	var conn *amqp.Connection
	for deadline := time.Now().Add(3 * time.Minute); ; {
		if conn, err = amqp.Dial(u.String()); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("rabbitmq-server exited during start:\n%s", readFile(t, stdout))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the services' URL is refused after 3m: %v\n%s", err, readFile(t, stdout))
		}
	}
	defer func() { _ = conn.Close() }()

	t.Run("the services' user works in the shop's virtual host", func(t *testing.T) {
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
		if out := readFile(t, stdout); !strings.Contains(out, "node           : "+RabbitMQNodeName) || !strings.Contains(out, "Server startup complete") {
			t.Errorf("standard output lacks the node's log:\n%s", out)
		}
	})

	t.Run("the memory alarm is half the container's memory limit", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		eval := exec.CommandContext(ctx, filepath.Join(rabbitMQScripts, "rabbitmqctl"), "-q", "eval", "vm_memory_monitor:get_memory_limit().")
		eval.Env = env
		out, err := eval.CombinedOutput()
		if err != nil {
			t.Fatalf("rabbitmqctl eval: %v\n%s", err, out)
		}
		want := defaultStoreResources.Limits.Memory().Value() / 2
		if got := strings.TrimSpace(string(out)); got != strconv.FormatInt(want, 10) {
			t.Errorf("memory limit %s, want %d", got, want)
		}
	})

	t.Run("the CLI tools find the node through the environment file", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		ping := exec.CommandContext(ctx, filepath.Join(rabbitMQScripts, "rabbitmq-diagnostics"), "-q", "ping")
		ping.Env = env
		if out, err := ping.CombinedOutput(); err != nil {
			t.Errorf("rabbitmq-diagnostics -q ping: %v\n%s", err, out)
		}
	})
}

// startProcess starts cmd in its own process group with its output to logPath and
// stops it when the test ends: SIGTERM, then SIGKILL to the whole group after grace.
// The child also gets SIGTERM should the test binary die first. The returned channel
// is closed when the process exits.
func startProcess(t *testing.T, cmd *exec.Cmd, logPath string, grace time.Duration) <-chan struct{} {
	t.Helper()
	p, err := testproc.Start(cmd, logPath)
	if err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return p.Done()
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
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
