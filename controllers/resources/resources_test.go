package resources

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// newShop is a Shop as the API server stores it after defaulting, changed by edits.
func newShop(edits ...func(*shopv1.Shop)) *shopv1.Shop {
	s := &shopv1.Shop{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "shops", UID: "uid-1"},
		Spec: shopv1.ShopSpec{
			Version:         "v0.1.0",
			Image:           shopv1.DefaultImage,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Gateway: shopv1.GatewaySpec{
				Replicas:        ptr.To[int32](2),
				RateLimit:       shopv1.RateLimitSpec{Requests: ptr.To[int32](100), Window: &metav1.Duration{Duration: 15 * time.Minute}},
				Service:         shopv1.GatewayServiceSpec{Type: corev1.ServiceTypeClusterIP},
				UpstreamTimeout: &metav1.Duration{Duration: 10 * time.Second},
			},
			Services: shopv1.ServicesSpec{
				User:    shopv1.ServiceSpec{Replicas: ptr.To[int32](1)},
				Product: shopv1.ServiceSpec{Replicas: ptr.To[int32](1)},
				Order:   shopv1.ServiceSpec{Replicas: ptr.To[int32](1)},
				Payment: shopv1.PaymentServiceSpec{ServiceSpec: shopv1.ServiceSpec{Replicas: ptr.To[int32](1)}, LimitCents: ptr.To[int64](100000)},
			},
			MongoDB: shopv1.MongoDBSpec{Engine: shopv1.EngineMongoDB},
		},
	}
	for _, e := range edits {
		e(s)
	}
	return s
}

func connectionsOf(t *testing.T, shop *shopv1.Shop) *corev1.Secret {
	t.Helper()
	mc := CredentialsSecret(shop, MongoDB, nil)
	rc := CredentialsSecret(shop, RabbitMQ, nil)
	c, err := ConnectionsSecret(shop, StoreURIs{MongoDB: InClusterMongoDBURI(shop, mc), RabbitMQ: InClusterRabbitMQURL(shop, rc),
		RabbitMQServices: InClusterRabbitMQServiceURLs(shop, rabbitUsers(shop))}, []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// allObjects builds every child of shop.
func allObjects(t *testing.T, shop *shopv1.Shop) []client.Object {
	t.Helper()
	conn := connectionsOf(t, shop)
	objs := []client.Object{conn}
	for _, s := range InClusterStores(shop) {
		creds := CredentialsSecret(shop, s, nil)
		read := creds
		if s == RabbitMQ {
			read = rabbitMQConfig(t, shop, creds)
			objs = append(objs, read, rabbitUsers(shop))
		}
		objs = append(objs, creds, StoreStatefulSet(shop, s, read), StoreService(shop, s),
			StorePersistentVolumeClaim(shop, s), NetworkPolicy(shop, s))
	}
	for _, a := range Apps {
		objs = append(objs, AppWorkload(shop, a, conn), AppService(shop, a),
			AppPodDisruptionBudget(shop, a), NetworkPolicy(shop, a))
	}
	return objs
}

// rabbitUsers is the broker's users Secret with fixed passwords: order-pw, payment-pw.
func rabbitUsers(shop *shopv1.Shop) *corev1.Secret {
	s := RabbitMQUsersSecret(shop, nil)
	for service := range RabbitMQServiceUsers {
		s.Data[RabbitMQPasswordKey(service)] = []byte(service + "-pw")
	}
	return s
}

// rabbitMQConfig is the broker's configuration Secret made from creds and rabbitUsers.
func rabbitMQConfig(t *testing.T, shop *shopv1.Shop, creds *corev1.Secret) *corev1.Secret {
	t.Helper()
	config, err := RabbitMQConfigSecret(shop, creds, rabbitUsers(shop))
	if err != nil {
		t.Fatal(err)
	}
	return config
}

func TestEveryChildIsLabelledAndOwned(t *testing.T) {
	shop := newShop()
	objs := allObjects(t, shop)
	if got, want := len(objs), 1+2*5+2+5*4; got != want {
		t.Fatalf("built %d objects, want %d", got, want)
	}
	for _, o := range objs {
		name := o.GetObjectKind().GroupVersionKind().Kind + " " + o.GetName()
		if o.GetNamespace() != "shops" || !strings.HasPrefix(o.GetName(), "demo-") {
			t.Errorf("%s: namespace %q, want shops and a demo- prefix", name, o.GetNamespace())
		}
		l := o.GetLabels()
		for _, k := range []string{LabelName, LabelInstance, LabelComponent, LabelPartOf, LabelManagedBy, LabelShop} {
			if l[k] == "" {
				t.Errorf("%s: label %s missing", name, k)
			}
		}
		if l[LabelManagedBy] != ManagedBy || l[LabelInstance] != "demo" || l[LabelShop] != "demo" {
			t.Errorf("%s: labels %v", name, l)
		}
		refs := o.GetOwnerReferences()
		if len(refs) != 1 || refs[0].UID != "uid-1" || refs[0].Kind != "Shop" || !ptr.Deref(refs[0].Controller, false) {
			t.Errorf("%s: owner references %+v, want the Shop as controller", name, refs)
		}
	}
}

// TestLongestNameFits: with the longest name the API server accepts (43 characters), every
// child's name is valid (a DNS label for a Service, a subdomain for the rest), and a StatefulSet's pods can be made: their name (the
// StatefulSet's and "-0", also their hostname) is a DNS label, and their
// controller-revision-hash label (the StatefulSet's name, "-" and a hash of up to 10
// characters) is a label value.
func TestLongestNameFits(t *testing.T) {
	const longest = 43 // the Shop's CEL rule
	for _, engine := range []shopv1.MongoDBEngine{shopv1.EngineMongoDB, shopv1.EngineFerretDB} {
		shop := newShop(func(s *shopv1.Shop) {
			s.Name = "s" + strings.Repeat("0", longest-1)
			s.Spec.MongoDB.Engine = engine
		})
		sets := 0
		for _, o := range allObjects(t, shop) {
			name := o.GetName()
			errs := validation.IsDNS1123Subdomain(name)
			if _, ok := o.(*corev1.Service); ok {
				errs = validation.IsDNS1035Label(name)
			}
			if len(errs) > 0 {
				t.Errorf("%s %s: %v", engine, name, errs)
			}
			if _, ok := o.(*appsv1.StatefulSet); !ok {
				continue
			}
			sets++
			if errs := validation.IsDNS1123Label(name + "-0"); len(errs) > 0 {
				t.Errorf("%s: pod %s-0: %v", engine, name, errs)
			}
			if errs := validation.IsValidLabelValue(name + "-" + strings.Repeat("f", 10)); len(errs) > 0 {
				t.Errorf("%s: controller-revision-hash of %s: %v", engine, name, errs)
			}
		}
		if sets < 4 {
			t.Errorf("%s: %d StatefulSets checked, want the stores, product and order at least", engine, sets)
		}
	}
}

func TestAppEnvironment(t *testing.T) {
	tests := []struct {
		app        string
		edit       func(*shopv1.Shop)
		wantValues map[string]string
		wantUnset  []string
		wantSecret map[string]string // env -> connections key
	}{
		{
			app: User, wantValues: map[string]string{"PORT": "8080"}, wantSecret: map[string]string{"MONGODB_URI": "user-mongodb-uri"},
			wantUnset: []string{"MONGODB_OPERATION_TIMEOUT"}, // the service's own 8 s
		},
		{
			// A database that does not answer gets the service's 503 before the gateway's 504.
			app:        Product,
			edit:       func(s *shopv1.Shop) { s.Spec.Gateway.UpstreamTimeout = &metav1.Duration{Duration: 5 * time.Second} },
			wantValues: map[string]string{"MONGODB_OPERATION_TIMEOUT": "4s"},
		},
		{
			app: Payment,
			edit: func(s *shopv1.Shop) {
				s.Spec.Gateway.UpstreamTimeout = &metav1.Duration{Duration: 500 * time.Millisecond}
			},
			// Not below 2 s, which a service's start needs too.
			wantValues: map[string]string{"MONGODB_OPERATION_TIMEOUT": "2s"},
		},
		{app: Product, wantValues: map[string]string{"PORT": "8080"}, wantSecret: map[string]string{"MONGODB_URI": "product-mongodb-uri"}},
		{
			app: Order,
			wantValues: map[string]string{
				"USER_SERVICE_URL": "http://demo-user:80", "PRODUCT_SERVICE_URL": "http://demo-product:80",
				"PAYMENT_SERVICE_URL": "http://demo-payment:80", "PLACEMENT_TIMEOUT": "8s",
			},
			wantUnset:  []string{"HTTP_WRITE_TIMEOUT"}, // the service's own 30 s
			wantSecret: map[string]string{"MONGODB_URI": "order-mongodb-uri", "RABBITMQ_URL": "order-rabbitmq-url"},
		},
		{
			// The order service answers before the gateway gives up on it.
			app: Order,
			edit: func(s *shopv1.Shop) {
				s.Spec.Gateway.UpstreamTimeout = &metav1.Duration{Duration: 1500 * time.Millisecond}
			},
			wantValues: map[string]string{"PLACEMENT_TIMEOUT": "1.2s", "MONGODB_OPERATION_TIMEOUT": "2s"},
		},
		{
			app:  Order,
			edit: func(s *shopv1.Shop) { s.Spec.Gateway.UpstreamTimeout = &metav1.Duration{Duration: time.Minute} },
			// The order service's server lets an answer take as long (its default is 30 s).
			wantValues: map[string]string{"PLACEMENT_TIMEOUT": "58s", "HTTP_WRITE_TIMEOUT": "1m0s"},
		},
		{
			app:        Order,
			edit:       func(s *shopv1.Shop) { s.Spec.Gateway.UpstreamTimeout = &metav1.Duration{Duration: 30 * time.Second} },
			wantValues: map[string]string{"PLACEMENT_TIMEOUT": "28s"},
			// A longer wait of the gateway's does not make a database wait longer.
			wantUnset: []string{"HTTP_WRITE_TIMEOUT", "MONGODB_OPERATION_TIMEOUT"},
		},
		{
			app:        Payment,
			edit:       func(s *shopv1.Shop) { s.Spec.Services.Payment.LimitCents = ptr.To[int64](5000) },
			wantValues: map[string]string{"PAYMENT_LIMIT_CENTS": "5000"},
			wantSecret: map[string]string{"MONGODB_URI": "payment-mongodb-uri", "RABBITMQ_URL": "payment-rabbitmq-url"},
		},
		{
			// An external broker's URL is the one the Shop's Secret gives, the same for both.
			app: Payment,
			edit: func(s *shopv1.Shop) {
				s.Spec.RabbitMQ.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "broker", Key: "url"}}
			},
			wantSecret: map[string]string{"MONGODB_URI": "payment-mongodb-uri", "RABBITMQ_URL": "rabbitmq-url"},
		},
		{
			app: Gateway,
			wantValues: map[string]string{
				"USER_SERVICE_URL": "http://demo-user:80", "PRODUCT_SERVICE_URL": "http://demo-product:80",
				"ORDER_SERVICE_URL": "http://demo-order:80", "PAYMENT_SERVICE_URL": "http://demo-payment:80",
				"RATE_LIMIT_REQUESTS": "100", "RATE_LIMIT_WINDOW": "15m0s", "TRUSTED_PROXIES": "", "UPSTREAM_TIMEOUT": "10s",
				"METRICS_PORT": "9090",
			},
		},
		{
			app: Gateway,
			edit: func(s *shopv1.Shop) {
				s.Spec.Gateway.RateLimit.Requests = ptr.To[int32](7)
				s.Spec.Gateway.RateLimit.Window = &metav1.Duration{Duration: time.Hour}
				s.Spec.Gateway.TrustedProxies = []string{"fd00::/8", "10.0.0.0/8"} // a set: written in one order
				s.Spec.Gateway.UpstreamTimeout = &metav1.Duration{Duration: 1500 * time.Millisecond}
			},
			wantValues: map[string]string{
				"RATE_LIMIT_REQUESTS": "7", "RATE_LIMIT_WINDOW": "1h0m0s",
				"TRUSTED_PROXIES": "10.0.0.0/8,fd00::/8", "UPSTREAM_TIMEOUT": "1.5s",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.app, func(t *testing.T) {
			shop := newShop()
			if tt.edit != nil {
				tt.edit(shop)
			}
			c := templateOf(t, AppWorkload(shop, tt.app, connectionsOf(t, shop))).Spec.Containers[0]
			if got := c.Command; !slices.Equal(got, []string{"/" + tt.app}) {
				t.Errorf("command %v", got)
			}
			if c.Image != "ghcr.io/shopkeeper-dev/shopkeeper-services:v0.1.0" {
				t.Errorf("image %q", c.Image)
			}
			env := map[string]corev1.EnvVar{}
			for _, e := range c.Env {
				env[e.Name] = e
			}
			for k, v := range tt.wantValues {
				if e, ok := env[k]; !ok || e.Value != v {
					t.Errorf("env %s = %q (set %v), want %q", k, e.Value, ok, v)
				}
			}
			for _, k := range tt.wantUnset {
				if e, ok := env[k]; ok {
					t.Errorf("env %s = %q, want it unset", k, e.Value)
				}
			}
			for k, key := range tt.wantSecret {
				ref := env[k].ValueFrom
				if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != "demo-connections" || ref.SecretKeyRef.Key != key {
					t.Errorf("env %s from %+v, want demo-connections/%s", k, ref, key)
				}
			}
			if got, want := len(c.Env), 1+len(tt.wantSecret)+len(tt.wantValues)-boolInt(tt.wantValues["PORT"] != ""); tt.edit == nil && got != want {
				t.Errorf("%d env vars, want %d: %v", got, want, c.Env)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestUndefaultedShopGetsTheAPIDefaults: a Shop stored before the API server defaulted its
// fields gets the defaults the API documents (shop_types.go: gateway replicas 2, a service's
// 1, requests 100 per 15m window, upstream timeout 10s, payment limit 100000), not others the
// builders chose: every test Shop had them all set, so no test read the builders' own.
func TestUndefaultedShopGetsTheAPIDefaults(t *testing.T) {
	shop := newShop(func(s *shopv1.Shop) {
		s.Spec.Gateway = shopv1.GatewaySpec{}
		s.Spec.Services = shopv1.ServicesSpec{}
	})
	for _, app := range Apps {
		want := int32(1)
		if app == Gateway {
			want = 2
		}
		if got := AppReplicas(shop, app); got != want {
			t.Errorf("%s: %d replicas, want %d", app, got, want)
		}
	}
	env := map[string]string{}
	for _, app := range []string{Gateway, Payment} {
		for _, e := range templateOf(t, AppWorkload(shop, app, connectionsOf(t, shop))).Spec.Containers[0].Env {
			env[e.Name] = e.Value
		}
	}
	// Spelt as the defaulted Shop's are, so that the API server's defaulting, when the Shop
	// is next written, does not roll the gateway's pods: "15m0s", not "15m".
	for k, v := range map[string]string{"RATE_LIMIT_REQUESTS": "100", "PAYMENT_LIMIT_CENTS": "100000", "RATE_LIMIT_WINDOW": "15m0s"} {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	for k, want := range map[string]time.Duration{"RATE_LIMIT_WINDOW": 15 * time.Minute, "UPSTREAM_TIMEOUT": 10 * time.Second} {
		if d, err := time.ParseDuration(env[k]); err != nil || d != want {
			t.Errorf("env %s = %q, want %s", k, env[k], want)
		}
	}
}

func TestAppPodSpec(t *testing.T) {
	shop := newShop(func(s *shopv1.Shop) {
		s.Spec.PodLabels = map[string]shopv1.LabelValue{"team": "shop"}
		s.Spec.PodAnnotations = map[string]shopv1.AnnotationValue{"example.com/scrape": "true"}
		s.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "registry"}}
		s.Spec.Services.User.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}
		s.Spec.Gateway.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}
	})
	conn := connectionsOf(t, shop)
	for _, a := range Apps {
		w := AppWorkload(shop, a, conn)
		p := templateOf(t, w)
		c := p.Spec.Containers[0]
		if !ptr.Deref(p.Spec.SecurityContext.RunAsNonRoot, false) || p.Spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod security context %+v", a, p.Spec.SecurityContext)
		}
		sc := c.SecurityContext
		if ptr.Deref(sc.AllowPrivilegeEscalation, true) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("%s: container security context %+v", a, sc)
		}
		if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.Ports[0].ContainerPort != 8080 {
			t.Errorf("%s: probes or port wrong", a)
		}
		// Serving on while its endpoints go, then the services' 20 s shutdown, within the grace period.
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds != 5 ||
			ptr.Deref(p.Spec.TerminationGracePeriodSeconds, 0) < 5+20 {
			t.Errorf("%s: preStop %+v, grace period %v", a, c.Lifecycle, p.Spec.TerminationGracePeriodSeconds)
		}
		if p.Labels["team"] != "shop" || p.Labels[LabelName] != a || p.Annotations["example.com/scrape"] != "true" || p.Annotations[ChecksumAnnotation] == "" {
			t.Errorf("%s: template metadata %+v", a, p.ObjectMeta)
		}
		if _, sel := podsOf(t, w); !maps.Equal(sel.MatchLabels, map[string]string{LabelName: a, LabelInstance: "demo"}) {
			t.Errorf("%s: selector %v", a, sel.MatchLabels)
		}
		if len(p.Spec.ImagePullSecrets) != 1 {
			t.Errorf("%s: image pull secrets %v", a, p.Spec.ImagePullSecrets)
		}
		wantCPU := map[string]string{User: "2", Gateway: "500m"}[a]
		if wantCPU == "" {
			wantCPU = "50m"
		}
		if got := c.Resources.Requests[corev1.ResourceCPU]; got.String() != wantCPU {
			t.Errorf("%s: cpu request %s, want %s", a, got.String(), wantCPU)
		}
	}
	if got := *AppWorkload(shop, Gateway, conn).(*appsv1.Deployment).Spec.Replicas; got != 2 {
		t.Errorf("gateway replicas %d, want 2", got)
	}
}

// podsOf is the pod template and the pod selector of w, a Deployment or a StatefulSet.
func podsOf(t *testing.T, w client.Object) (corev1.PodTemplateSpec, *metav1.LabelSelector) {
	t.Helper()
	switch w := w.(type) {
	case *appsv1.Deployment:
		return w.Spec.Template, w.Spec.Selector
	case *appsv1.StatefulSet:
		return w.Spec.Template, w.Spec.Selector
	}
	t.Fatalf("%T is no workload", w)
	return corev1.PodTemplateSpec{}, nil
}

// templateOf is the pod template of w, a Deployment or a StatefulSet.
func templateOf(t *testing.T, w client.Object) corev1.PodTemplateSpec {
	t.Helper()
	template, _ := podsOf(t, w)
	return template
}

// TestAppWorkloadKind: an app whose exactly-once updates rest on locks in its one
// process (product and order always; user and payment on FerretDB) runs as a StatefulSet, so that
// its replacement never starts before it is gone, on a rollout or an eviction alike; any
// other is a Deployment that keeps every asked-for pod ready while rolling out.
func TestAppWorkloadKind(t *testing.T) {
	onMongoDB, onFerretDB := newShop(), newShop(func(s *shopv1.Shop) { s.Spec.MongoDB.Engine = shopv1.EngineFerretDB })
	tests := []struct {
		shop       *shopv1.Shop
		app        string
		oneProcess bool
	}{
		{onMongoDB, User, false},
		{onMongoDB, Product, true},
		{onMongoDB, Order, true},
		{onMongoDB, Payment, false},
		{onMongoDB, Gateway, false},
		{onFerretDB, User, true},
		{onFerretDB, Product, true},
		{onFerretDB, Order, true},
		{onFerretDB, Payment, true},
		{onFerretDB, Gateway, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.shop.Spec.MongoDB.Engine)+"/"+tt.app, func(t *testing.T) {
			if got := OneProcess(tt.shop, tt.app); got != tt.oneProcess {
				t.Errorf("OneProcess = %v, want %v", got, tt.oneProcess)
			}
			switch w := AppWorkload(tt.shop, tt.app, connectionsOf(t, tt.shop)).(type) {
			case *appsv1.StatefulSet:
				if !tt.oneProcess {
					t.Fatal("a StatefulSet, want a Deployment")
				}
				if w.Spec.PodManagementPolicy != appsv1.ParallelPodManagement || ptr.Deref(w.Spec.Replicas, 0) != 1 ||
					w.Spec.ServiceName != w.Name || w.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
					t.Errorf("spec %+v", w.Spec)
				}
			case *appsv1.Deployment:
				if tt.oneProcess {
					t.Fatal("a Deployment, want a StatefulSet")
				}
				got := w.Spec.Strategy
				ru := got.RollingUpdate
				if got.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge.IntValue() != 1 {
					t.Errorf("strategy %+v, want RollingUpdate with maxUnavailable 0, maxSurge 1", got)
				}
			default:
				t.Fatalf("%T", w)
			}
		})
	}
	for _, store := range []string{MongoDB, RabbitMQ} {
		if !OneProcess(onMongoDB, store) || !OneProcess(onFerretDB, store) {
			t.Errorf("%s may run as several processes", store)
		}
	}
}

// A service's checksum is keyed by the Shop's own key: who reads a pod template cannot test
// guesses at a password in the URIs it digests, and a new key gives a new checksum. The
// gateway's, of nothing, is not: a new key does not roll its pods.
func TestChecksumIsKeyed(t *testing.T) {
	shop := newShop()
	conn := connectionsOf(t, shop)
	rekeyed := conn.DeepCopy()
	rekeyed.Data[ChecksumKeyKey] = []byte("another key")
	for _, app := range []string{User, Order} {
		sum := templateOf(t, AppWorkload(shop, app, conn)).Annotations[ChecksumAnnotation]
		plain := sha256.New()
		for _, k := range slices.Sorted(slices.Values(appFor(shop, app).secretKeys)) {
			plain.Write([]byte(k + "\x00"))
			plain.Write(conn.Data[k])
			plain.Write([]byte{0})
		}
		if sum == hex.EncodeToString(plain.Sum(nil)) {
			t.Errorf("%s: checksum %s is a plain digest of the URIs", app, sum)
		}
		if other := templateOf(t, AppWorkload(shop, app, rekeyed)).Annotations[ChecksumAnnotation]; other == sum {
			t.Errorf("%s: checksum %s does not depend on the key", app, sum)
		}
	}
	// The gateway reads no Secret: nothing to hide, and its pods do not roll for a new key.
	sum := templateOf(t, AppWorkload(shop, Gateway, conn)).Annotations[ChecksumAnnotation]
	if empty := sha256.Sum256(nil); sum != hex.EncodeToString(empty[:]) {
		t.Errorf("gateway: checksum %s, want the plain digest of nothing", sum)
	}
	if other := templateOf(t, AppWorkload(shop, Gateway, rekeyed)).Annotations[ChecksumAnnotation]; other != sum {
		t.Errorf("gateway: checksum %s changed to %s with the key", sum, other)
	}
}

func TestChecksumFollowsWhatThePodReads(t *testing.T) {
	shop := newShop()
	conn := connectionsOf(t, shop)
	changed := conn.DeepCopy()
	changed.Data[RabbitMQServiceURLKey(Order)] = []byte("amqp://other")
	changed.Data[RabbitMQServiceURLKey(Payment)] = []byte("amqp://other")
	// The in-cluster broker's URL with its default user, which no service reads.
	admin := conn.DeepCopy()
	admin.Data[RabbitMQURLKey] = []byte("amqp://other")
	tests := []struct {
		app         string
		wantChanged bool
	}{
		{User, false}, {Product, false}, {Gateway, false}, {Order, true}, {Payment, true},
	}
	for _, tt := range tests {
		before := templateOf(t, AppWorkload(shop, tt.app, conn)).Annotations[ChecksumAnnotation]
		after := templateOf(t, AppWorkload(shop, tt.app, changed)).Annotations[ChecksumAnnotation]
		if again := templateOf(t, AppWorkload(shop, tt.app, conn)).Annotations[ChecksumAnnotation]; again != before {
			t.Errorf("%s: checksum not stable", tt.app)
		}
		if (before != after) != tt.wantChanged {
			t.Errorf("%s: checksum changed=%v after the broker URL changed, want %v", tt.app, before != after, tt.wantChanged)
		}
		if templateOf(t, AppWorkload(shop, tt.app, admin)).Annotations[ChecksumAnnotation] != before {
			t.Errorf("%s: checksum changed after the default user's URL changed, which it does not read", tt.app)
		}
	}
}

func TestCredentialsSecret(t *testing.T) {
	shop := newShop()
	first := CredentialsSecret(shop, MongoDB, nil)
	second := CredentialsSecret(shop, MongoDB, nil)
	if len(first.Data[PasswordKey]) < 20 || string(first.Data[PasswordKey]) == string(second.Data[PasswordKey]) {
		t.Errorf("passwords %q and %q: want long random values", first.Data[PasswordKey], second.Data[PasswordKey])
	}
	tests := []struct {
		name     string
		existing map[string][]byte
		want     func(got map[string][]byte) bool
	}{
		{"kept", first.Data, func(got map[string][]byte) bool { return maps.EqualFunc(got, first.Data, slices.Equal) }},
		{"missing password generated", map[string][]byte{UsernameKey: []byte("admin")}, func(got map[string][]byte) bool {
			return string(got[UsernameKey]) == "admin" && len(got[PasswordKey]) >= 20
		}},
		{"empty password regenerated", map[string][]byte{PasswordKey: {}}, func(got map[string][]byte) bool { return len(got[PasswordKey]) >= 20 }},
		{"foreign keys dropped", map[string][]byte{"other": []byte("x")}, func(got map[string][]byte) bool { _, ok := got["other"]; return !ok }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CredentialsSecret(shop, MongoDB, &corev1.Secret{Data: tt.existing}).Data
			if !tt.want(got) {
				t.Errorf("data %q", got)
			}
		})
	}
	if !ptr.Deref(first.Immutable, false) {
		t.Error("credentials Secret is not immutable")
	}
	broken := CredentialsSecret(shop, RabbitMQ, &corev1.Secret{Data: map[string][]byte{PasswordKey: []byte("a#b")}})
	if broken.Immutable != nil || string(broken.Data[PasswordKey]) != "a#b" {
		t.Errorf("a broker password its files cannot carry: immutable %v, password %q; want it kept, editable", broken.Immutable, broken.Data[PasswordKey])
	}
	if n := CredentialsSecretName(shop, RabbitMQ); n != "demo-rabbitmq-credentials" {
		t.Errorf("name %q", n)
	}
}

func TestConnectionsSecret(t *testing.T) {
	creds := &corev1.Secret{Data: map[string][]byte{UsernameKey: []byte("u"), PasswordKey: []byte("p@ss")}}
	tests := []struct {
		name  string
		shop  *shopv1.Shop
		uris  func(*shopv1.Shop) StoreURIs
		want  map[string]string
		error string // what the error says; "" for none
	}{
		{
			name: "in-cluster MongoDB and RabbitMQ",
			shop: newShop(),
			uris: func(s *shopv1.Shop) StoreURIs {
				return StoreURIs{MongoDB: InClusterMongoDBURI(s, creds), RabbitMQ: InClusterRabbitMQURL(s, creds)}
			},
			want: map[string]string{
				"user-mongodb-uri":    "mongodb://u:p%40ss@demo-mongodb:27017/users?authSource=admin",
				"payment-mongodb-uri": "mongodb://u:p%40ss@demo-mongodb:27017/payments?authSource=admin",
				"rabbitmq-url":        "amqp://u:p%40ss@demo-rabbitmq:5672/shop",
			},
		},
		{
			name: "FerretDB has no credentials",
			shop: newShop(func(s *shopv1.Shop) { s.Spec.MongoDB.Engine = shopv1.EngineFerretDB }),
			uris: func(s *shopv1.Shop) StoreURIs { return StoreURIs{MongoDB: InClusterMongoDBURI(s, creds)} },
			want: map[string]string{"order-mongodb-uri": "mongodb://demo-mongodb:27017/orders", "product-mongodb-uri": "mongodb://demo-mongodb:27017/products"},
		},
		{
			// Two Shops on one server: the path is where the credentials are checked, the
			// prefix keeps each Shop's databases apart.
			name: "external MongoDB with a database prefix",
			shop: newShop(func(s *shopv1.Shop) { s.Spec.MongoDB.DatabasePrefix = "staging" }),
			uris: func(*shopv1.Shop) StoreURIs {
				return StoreURIs{MongoDB: "mongodb://app:pw@mongo.example.com:27017/shop-admin?tls=true"}
			},
			want: map[string]string{
				"user-mongodb-uri":    "mongodb://app:pw@mongo.example.com:27017/staging-users?authSource=shop-admin&tls=true",
				"product-mongodb-uri": "mongodb://app:pw@mongo.example.com:27017/staging-products?authSource=shop-admin&tls=true",
			},
		},
		{
			// What the driver says, never a piece of the password it took for a port.
			name: "external URI with an unescaped slash in its password",
			shop: newShop(),
			uris: func(*shopv1.Shop) StoreURIs {
				return StoreURIs{MongoDB: "mongodb://app:Kq9ZtAbCdEf/rest@mongo.example.com:27017/"}
			},
			error: "unescaped slash in password",
		},
		{
			// The Problem quoting this error is in the Shop's status, which more may read than
			// the Secret: no piece of the TLS key's password, which holds a literal "%".
			name: "external URI with an unescaped % in its TLS key's password",
			shop: newShop(),
			uris: func(*shopv1.Shop) StoreURIs {
				return StoreURIs{MongoDB: "mongodb://mongo.example.com/?tls=true&tlsCertificateKeyFile=/k.pem&tlsCertificateKeyFilePassword=Kq9Zt%rest"}
			},
			error: "invalid option value",
		},
		{
			// The driver asks for a "/" before the options, which the database written gives.
			name: "external URI with options and no slash before them",
			shop: newShop(),
			uris: func(*shopv1.Shop) StoreURIs {
				return StoreURIs{MongoDB: "mongodb://u:p@mongo.example.com?tls=true"}
			},
			want: map[string]string{"user-mongodb-uri": "mongodb://u:p@mongo.example.com/users?authSource=admin&tls=true"},
		},
		{
			name: "external URI of AWS IAM users",
			shop: newShop(),
			uris: func(*shopv1.Shop) StoreURIs {
				return StoreURIs{MongoDB: "mongodb+srv://AKIAEXAMPLE:secretkey@cluster0.example.net/?authMechanism=MONGODB-AWS&tls=true"}
			},
			want: map[string]string{"user-mongodb-uri": "mongodb+srv://AKIAEXAMPLE:secretkey@cluster0.example.net/users?authMechanism=MONGODB-AWS&tls=true"},
		},
		{
			// Refused by the driver as given; rewritten, it would name host cd.
			name: "external URI whose password holds an unescaped @, / and ?",
			shop: newShop(),
			uris: func(*shopv1.Shop) StoreURIs {
				return StoreURIs{MongoDB: "mongodb://u:ab@cd/ef?gh@host/"}
			},
			error: "not a usable MongoDB connection string",
		},
		{
			name:  "external URI that is no MongoDB URI",
			shop:  newShop(),
			uris:  func(*shopv1.Shop) StoreURIs { return StoreURIs{MongoDB: "postgres://db"} },
			error: `scheme must be "mongodb" or "mongodb+srv"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ConnectionsSecret(tt.shop, tt.uris(tt.shop), []byte("key"))
			if tt.error != "" {
				if err == nil || !strings.Contains(err.Error(), tt.error) || strings.Contains(err.Error(), "Kq9Zt") {
					t.Fatalf("error %v, want one saying %q and no piece of the password", err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if got := string(s.Data[k]); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestCredentialsFromConnections(t *testing.T) {
	creds := map[string][]byte{UsernameKey: []byte("u"), PasswordKey: []byte("p@ss:/?%")}
	hashed := map[string][]byte{UsernameKey: []byte("u"), PasswordKey: []byte("p@ss#1")}
	connections := func(s *shopv1.Shop, uris StoreURIs) *corev1.Secret {
		conn, err := ConnectionsSecret(s, uris, []byte("key"))
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	inCluster := func(s *shopv1.Shop) *corev1.Secret {
		c := &corev1.Secret{Data: creds}
		return connections(s, StoreURIs{MongoDB: InClusterMongoDBURI(s, c), RabbitMQ: InClusterRabbitMQURL(s, c)})
	}
	tests := []struct {
		name  string
		shop  *shopv1.Shop
		conn  func(*shopv1.Shop) *corev1.Secret
		store string
		want  map[string][]byte
	}{
		{"MongoDB read back", newShop(), inCluster, MongoDB, creds},
		{"RabbitMQ read back", newShop(), inCluster, RabbitMQ, creds},
		{"no connections Secret", newShop(), func(*shopv1.Shop) *corev1.Secret { return nil }, RabbitMQ, nil},
		{"FerretDB's URI carries no user", newShop(func(s *shopv1.Shop) { s.Spec.MongoDB.Engine = shopv1.EngineFerretDB }), inCluster, MongoDB, nil},
		{"another Shop's store", newShop(func(s *shopv1.Shop) { s.Name = "other" }), func(*shopv1.Shop) *corev1.Secret { return inCluster(newShop()) }, RabbitMQ, nil},
		{"an external broker", newShop(), func(s *shopv1.Shop) *corev1.Secret {
			return connections(s, StoreURIs{MongoDB: "mongodb://db/", RabbitMQ: "amqp://u:p@broker.example:5672/"})
		}, RabbitMQ, nil},
		{"a user without a password", newShop(), func(s *shopv1.Shop) *corev1.Secret {
			return connections(s, StoreURIs{MongoDB: "mongodb://db/", RabbitMQ: "amqp://u@demo-rabbitmq:5672/shop"})
		}, RabbitMQ, nil},
		{"a user with an empty password", newShop(), func(s *shopv1.Shop) *corev1.Secret {
			return &corev1.Secret{Data: map[string][]byte{MongoDBURIKey(User): []byte("mongodb://u:@demo-mongodb:27017/users?authSource=admin")}}
		}, MongoDB, nil},
		{"no store of that name", newShop(), inCluster, "redis", nil},
		{"a '#' in MongoDB's password", newShop(), func(s *shopv1.Shop) *corev1.Secret {
			c := &corev1.Secret{Data: hashed}
			return connections(s, StoreURIs{MongoDB: InClusterMongoDBURI(s, c), RabbitMQ: InClusterRabbitMQURL(s, c)})
		}, MongoDB, hashed},
		{"a '#' in the broker's password, which its files cannot carry", newShop(), func(s *shopv1.Shop) *corev1.Secret {
			c := &corev1.Secret{Data: hashed}
			return connections(s, StoreURIs{MongoDB: InClusterMongoDBURI(s, c), RabbitMQ: InClusterRabbitMQURL(s, c)})
		}, RabbitMQ, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CredentialsFromConnections(tt.shop, tt.store, tt.conn(tt.shop))
			if !maps.EqualFunc(got, tt.want, slices.Equal) || (got == nil) != (tt.want == nil) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWithDatabase(t *testing.T) {
	tests := []struct{ uri, want, err string }{
		{uri: "mongodb://h:27017", want: "mongodb://h:27017/users"},
		{uri: "mongodb://h:27017/", want: "mongodb://h:27017/users"},
		{uri: "mongodb://h/other?replicaSet=rs0", want: "mongodb://h/users?replicaSet=rs0"},
		{uri: "mongodb://u:p@h1:27017,h2:27017/?replicaSet=rs0", want: "mongodb://u:p@h1:27017,h2:27017/users?authSource=admin&replicaSet=rs0"},
		{uri: "mongodb://u:p@h/app", want: "mongodb://u:p@h/users?authSource=app"},
		{uri: "mongodb+srv://u:p@cluster.example.com/?authSource=x", want: "mongodb+srv://u:p@cluster.example.com/users?authSource=x"},
		{uri: "mongodb://u:p@h?tls=true", want: "mongodb://u:p@h/users?authSource=admin&tls=true"},
		// The driver takes the user information up to the first "@", "?" and all.
		{uri: "mongodb://u:Kq9?Zt@h:27017/", want: "mongodb://u:Kq9?Zt@h:27017/users?authSource=admin"},
		// The driver reads options whatever their case: an AUTHSOURCE is kept as the only one.
		{uri: "mongodb://u:p@h/app?AUTHSOURCE=admin", want: "mongodb://u:p@h/users?AUTHSOURCE=admin"},
		// Users checked outside the database ($external) get no authSource.
		{uri: "mongodb://ldapuser:pw@h/?authMechanism=PLAIN", want: "mongodb://ldapuser:pw@h/users?authMechanism=PLAIN"},
		{uri: "mongodb://AKIA:key@h/?authMechanism=mongodb-aws&tls=true", want: "mongodb://AKIA:key@h/users?authMechanism=mongodb-aws&tls=true"},
		{uri: "mongodb://u:p@h/?authMechanism=SCRAM-SHA-256", want: "mongodb://u:p@h/users?authMechanism=SCRAM-SHA-256&authSource=admin"},
		{uri: "http://h", err: "must start with mongodb://"},
		{uri: "mongodb://", err: "names no host"},
		{uri: "mongodb://u:p@/db", err: "names no host"},
		{uri: "mongodb://h/?a=%zz", err: "bad options"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			got, err := WithDatabase(tt.uri, "users")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestStores(t *testing.T) {
	external := &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "s", Key: "uri"}}
	tests := []struct {
		name       string
		edit       func(*shopv1.Shop)
		wantStores []string
		check      func(t *testing.T, shop *shopv1.Shop)
	}{
		{
			name:       "MongoDB and RabbitMQ by default",
			wantStores: []string{MongoDB, RabbitMQ},
			check: func(t *testing.T, shop *shopv1.Shop) {
				d := StoreStatefulSet(shop, MongoDB, CredentialsSecret(shop, MongoDB, nil))
				c := d.Spec.Template.Spec.Containers[0]
				if c.Image != "mongo:8.0" || ptr.Deref(d.Spec.Template.Spec.SecurityContext.RunAsUser, 0) != 999 || d.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
					t.Errorf("mongodb: image %q, pod security %+v, pod management %s", c.Image, d.Spec.Template.Spec.SecurityContext, d.Spec.PodManagementPolicy)
				}
				if got := envNames(c.Env); !slices.Equal(got, []string{"MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD"}) || c.Env[1].ValueFrom.SecretKeyRef.Name != "demo-mongodb-credentials" {
					t.Errorf("mongodb env %v", c.Env)
				}
				pvc := StorePersistentVolumeClaim(shop, MongoDB)
				if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.String() != "1Gi" || pvc.Spec.StorageClassName != nil {
					t.Errorf("pvc size %s class %v", got.String(), pvc.Spec.StorageClassName)
				}
				if got := StoreService(shop, RabbitMQ).Spec.Ports[0]; got.Port != 5672 || got.TargetPort.StrVal != "amqp" {
					t.Errorf("rabbitmq service port %+v", got)
				}
			},
		},
		{
			name:       "RabbitMQ reads mounted files, no variables",
			wantStores: []string{MongoDB, RabbitMQ},
			check: func(t *testing.T, shop *shopv1.Shop) {
				d := StoreStatefulSet(shop, RabbitMQ, rabbitMQConfig(t, shop, CredentialsSecret(shop, RabbitMQ, nil)))
				p := d.Spec.Template.Spec
				c := p.Containers[0]
				if c.Image != "rabbitmq:4-management" || len(c.Env) != 0 || len(c.Command) != 0 || len(c.Args) != 0 {
					t.Errorf("rabbitmq: image %q env %v command %v args %v: want the image's entrypoint and no variables", c.Image, c.Env, c.Command, c.Args)
				}
				if ptr.Deref(p.SecurityContext.RunAsUser, 0) != 999 || ptr.Deref(p.SecurityContext.FSGroup, 0) != 999 {
					t.Errorf("rabbitmq pod security %+v", p.SecurityContext)
				}
				wantMounts := []string{
					"log:/var/log/rabbitmq", "tmp:/tmp", "data:/var/lib/rabbitmq",
					"config:/etc/rabbitmq/conf.d/90-shopkeeper.conf<90-shopkeeper.conf",
					"config:/etc/rabbitmq/shopkeeper-definitions.json<definitions.json",
					"config:/etc/rabbitmq/rabbitmq-env.conf<rabbitmq-env.conf",
				}
				if got := mountsOf(c.VolumeMounts); !slices.Equal(got, wantMounts) {
					t.Errorf("rabbitmq mounts %v, want %v", got, wantMounts)
				}
				for _, m := range c.VolumeMounts {
					if m.SubPath != "" && !m.ReadOnly {
						t.Errorf("mount %s is writable", m.MountPath)
					}
				}
				config := volumeNamed(p.Volumes, "config").Secret
				if config == nil || config.SecretName != "demo-rabbitmq-config" || ptr.Deref(config.DefaultMode, 0) != 0o440 || len(config.Items) != 3 {
					t.Errorf("config volume %+v", config)
				}
				if c.LivenessProbe.TCPSocket.Port.StrVal != "amqp" || c.ReadinessProbe.TCPSocket.Port.StrVal != "amqp" || len(c.Ports) != 1 || c.Ports[0].ContainerPort != 5672 {
					t.Errorf("rabbitmq probes %+v %+v ports %v", c.LivenessProbe, c.ReadinessProbe, c.Ports)
				}
			},
		},
		{
			name: "FerretDB engine runs FerretDB's image, set by FerretDB's variables",
			edit: func(s *shopv1.Shop) {
				s.Spec.MongoDB.Engine = shopv1.EngineFerretDB
				s.Spec.MongoDB.Storage = &shopv1.StorageSpec{Size: ptr.To(resource.MustParse("5Gi")), StorageClassName: ptr.To("fast")}
			},
			wantStores: []string{MongoDB, RabbitMQ},
			check: func(t *testing.T, shop *shopv1.Shop) {
				d := StoreStatefulSet(shop, MongoDB, nil)
				p := d.Spec.Template.Spec
				c := p.Containers[0]
				if c.Image != "ghcr.io/ferretdb/ferretdb:1.24.2" || len(c.Command) != 0 || len(c.Args) != 0 {
					t.Errorf("ferretdb container %s %v %v: want FerretDB's image and its entrypoint", c.Image, c.Command, c.Args)
				}
				wantEnv := map[string]string{
					"FERRETDB_HANDLER": "sqlite", "FERRETDB_SQLITE_URL": "file:/data/", "FERRETDB_LISTEN_ADDR": ":27017",
					"FERRETDB_STATE_DIR": "/data", "FERRETDB_DEBUG_ADDR": "127.0.0.1:8088", "FERRETDB_TELEMETRY": "disable",
				}
				if got := envValues(c.Env); !maps.Equal(got, wantEnv) {
					t.Errorf("ferretdb env %v, want %v", got, wantEnv)
				}
				if got := mountsOf(c.VolumeMounts); !slices.Equal(got, []string{"tmp:/tmp", "data:/data"}) {
					t.Errorf("ferretdb mounts %v", got)
				}
				if ptr.Deref(p.SecurityContext.RunAsUser, 0) != 65532 || d.Spec.Template.Annotations[ChecksumAnnotation] != checksum(nil, nil) {
					t.Errorf("ferretdb pod security %+v, annotations %v", p.SecurityContext, d.Spec.Template.Annotations)
				}
				pvc := StorePersistentVolumeClaim(shop, MongoDB)
				if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.String() != "5Gi" || ptr.Deref(pvc.Spec.StorageClassName, "") != "fast" {
					t.Errorf("pvc size %s class %v", got.String(), pvc.Spec.StorageClassName)
				}
			},
		},
		{
			name: "FerretDB image of one's own",
			edit: func(s *shopv1.Shop) {
				s.Spec.MongoDB.Engine = shopv1.EngineFerretDB
				s.Spec.MongoDB.Image = "localhost/shopkeeper/ferretdb:v1.24.2"
			},
			wantStores: []string{MongoDB, RabbitMQ},
			check: func(t *testing.T, shop *shopv1.Shop) {
				if c := StoreStatefulSet(shop, MongoDB, nil).Spec.Template.Spec.Containers[0]; c.Image != "localhost/shopkeeper/ferretdb:v1.24.2" || len(c.Env) != 6 {
					t.Errorf("ferretdb %s env %v", c.Image, c.Env)
				}
			},
		},
		{
			name: "image and resources override",
			edit: func(s *shopv1.Shop) {
				s.Spec.RabbitMQ.Image = "registry.local/rabbitmq:4.1"
				s.Spec.RabbitMQ.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}}
			},
			wantStores: []string{MongoDB, RabbitMQ},
			check: func(t *testing.T, shop *shopv1.Shop) {
				c := StoreStatefulSet(shop, RabbitMQ, nil).Spec.Template.Spec.Containers[0]
				if got := c.Resources.Limits[corev1.ResourceMemory]; c.Image != "registry.local/rabbitmq:4.1" || got.String() != "2Gi" || len(c.Resources.Requests) != 0 {
					t.Errorf("rabbitmq %s %+v", c.Image, c.Resources)
				}
			},
		},
		{name: "external MongoDB", edit: func(s *shopv1.Shop) { s.Spec.MongoDB.External = external }, wantStores: []string{RabbitMQ}},
		{name: "external RabbitMQ", edit: func(s *shopv1.Shop) { s.Spec.RabbitMQ.External = external }, wantStores: []string{MongoDB}},
		{name: "both external", edit: func(s *shopv1.Shop) { s.Spec.MongoDB.External = external; s.Spec.RabbitMQ.External = external }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shop := newShop()
			if tt.edit != nil {
				tt.edit(shop)
			}
			if got := InClusterStores(shop); !slices.Equal(got, tt.wantStores) {
				t.Errorf("stores %v, want %v", got, tt.wantStores)
			}
			if tt.check != nil {
				tt.check(t, shop)
			}
		})
	}
}

func TestNetworkPolicyAdmitsOnlyCallers(t *testing.T) {
	tests := []struct {
		component string
		port      int32
		callers   []string // nil: anyone
	}{
		{Gateway, 8080, nil},
		{User, 8080, []string{Gateway, Order}},
		{Product, 8080, []string{Gateway, Order}},
		{Order, 8080, []string{Gateway}},
		{Payment, 8080, []string{Gateway, Order}},
		{MongoDB, 27017, []string{User, Product, Order, Payment}},
		{RabbitMQ, 5672, []string{Order, Payment}},
	}
	for _, tt := range tests {
		t.Run(tt.component, func(t *testing.T) {
			np := NetworkPolicy(newShop(), tt.component)
			if np.Spec.PodSelector.MatchLabels[LabelName] != tt.component || len(np.Spec.Ingress) != 1 {
				t.Fatalf("policy %+v", np.Spec)
			}
			rule := np.Spec.Ingress[0]
			if rule.Ports[0].Port.IntVal != tt.port {
				t.Errorf("port %v, want %d", rule.Ports[0].Port, tt.port)
			}
			if tt.callers == nil {
				if len(rule.From) != 0 {
					t.Errorf("from %+v, want anyone", rule.From)
				}
				return
			}
			sel := rule.From[0].PodSelector
			if sel.MatchLabels[LabelInstance] != "demo" || !slices.Equal(sel.MatchExpressions[0].Values, tt.callers) {
				t.Errorf("from %+v, want %v of shop demo", sel, tt.callers)
			}
		})
	}
}

func TestNetworkPolicyAdmitsScrapers(t *testing.T) {
	prometheus := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"},
	}}
	shop := newShop(func(s *shopv1.Shop) { s.Spec.Monitoring.Scrapers = []networkingv1.NetworkPolicyPeer{prometheus} })
	for _, c := range []string{Gateway, User, Product, Order, Payment, MongoDB, RabbitMQ} {
		ingress := NetworkPolicy(shop, c).Spec.Ingress
		from := ingress[0].From
		if c != Gateway && len(ingress) != 1 {
			t.Errorf("%s: %d ingress rules, want 1", c, len(ingress))
		}
		switch c {
		case Gateway: // its HTTP port open to anyone, its metrics port to the scrapers alone
			if len(from) != 0 || ingress[0].Ports[0].Port.IntVal != HTTPPort {
				t.Errorf("%s: %+v, want anyone on the HTTP port", c, ingress[0])
			}
			if len(ingress) != 2 || ingress[1].Ports[0].Port.IntVal != GatewayMetricsPort ||
				len(ingress[1].From) != 1 || !equality.Semantic.DeepEqual(ingress[1].From[0], prometheus) {
				t.Errorf("%s: ingress %+v, want the scraper alone on the metrics port", c, ingress)
			}
		case MongoDB, RabbitMQ: // serve no metrics
			if len(from) != 1 {
				t.Errorf("%s: from %+v, want only the shop's callers", c, from)
			}
		default:
			if len(from) != 2 || !equality.Semantic.DeepEqual(from[1], prometheus) {
				t.Errorf("%s: from %+v, want the callers and the scraper", c, from)
			}
		}
	}
}

// TestGatewayMetricsRuleMasksScraperCIDRs: the gateway's metrics rule, newer than the
// services' rules, admits the scrapers with their CIDRs masked to their prefix, the range
// admitted either way (10.1.2.3/16 is 10.1.0.0/16), excepted ranges included: Kubernetes
// 1.36 refuses a CIDR with bits past its prefix in a value a NetworkPolicy did not hold
// before, so the gateway's would be refused once the operator is upgraded. The services'
// rules keep the scrapers as given, which the API server ratchets; the Shop is left as it is.
func TestGatewayMetricsRuleMasksScraperCIDRs(t *testing.T) {
	given := func() []networkingv1.NetworkPolicyPeer {
		return []networkingv1.NetworkPolicyPeer{
			{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.2.3/16", Except: []string{"10.1.2.3/24", "fd00::1/64"}}},
			{IPBlock: &networkingv1.IPBlock{CIDR: "not a CIDR"}}, // for the API server to name
		}
	}
	masked := []networkingv1.NetworkPolicyPeer{
		{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.0/16", Except: []string{"10.1.2.0/24", "fd00::/64"}}},
		{IPBlock: &networkingv1.IPBlock{CIDR: "not a CIDR"}},
	}
	shop := newShop(func(s *shopv1.Shop) { s.Spec.Monitoring.Scrapers = given() })
	ingress := NetworkPolicy(shop, Gateway).Spec.Ingress
	if len(ingress) != 2 || !equality.Semantic.DeepEqual(ingress[1].From, masked) {
		t.Errorf("gateway's metrics rule %+v, want from %+v", ingress, masked)
	}
	if from := NetworkPolicy(shop, User).Spec.Ingress[0].From; len(from) != 3 || !equality.Semantic.DeepEqual(from[1:], given()) {
		t.Errorf("user's rule from %+v, want the callers and the scrapers as given", from)
	}
	if !equality.Semantic.DeepEqual(shop.Spec.Monitoring.Scrapers, given()) {
		t.Errorf("the Shop's scrapers were changed: %+v", shop.Spec.Monitoring.Scrapers)
	}
}

// TestGatewayMetricsPort: the gateway serves /metrics on a port of its own, named for a
// PodMonitor, which without scrapers no NetworkPolicy rule admits anyone to (an empty From
// would admit anyone); the other services serve it on their HTTP port.
func TestGatewayMetricsPort(t *testing.T) {
	for _, c := range []string{Gateway, User} {
		ports := templateOf(t, AppWorkload(newShop(), c, connectionsOf(t, newShop()))).Spec.Containers[0].Ports
		want := []corev1.ContainerPort{{Name: "http", ContainerPort: HTTPPort, Protocol: corev1.ProtocolTCP}}
		if c == Gateway {
			want = append(want, corev1.ContainerPort{Name: MetricsPortName, ContainerPort: GatewayMetricsPort, Protocol: corev1.ProtocolTCP})
		}
		if !equality.Semantic.DeepEqual(ports, want) {
			t.Errorf("%s ports %+v, want %+v", c, ports, want)
		}
	}
	if ingress := NetworkPolicy(newShop(), Gateway).Spec.Ingress; len(ingress) != 1 || ingress[0].Ports[0].Port.IntVal != HTTPPort {
		t.Errorf("gateway ingress without scrapers %+v, want the HTTP port alone", ingress)
	}
	for _, p := range AppService(newShop(), Gateway).Spec.Ports {
		if p.Port == GatewayMetricsPort || p.TargetPort.IntVal == GatewayMetricsPort || p.TargetPort.StrVal == MetricsPortName {
			t.Errorf("the gateway's Service exposes its metrics port: %+v", p)
		}
	}
}

func TestGatewayServiceTypeAndEndpoint(t *testing.T) {
	// Clients outside the cluster keep their address (the rate limit counts by it).
	policies := map[corev1.ServiceType]corev1.ServiceExternalTrafficPolicy{
		corev1.ServiceTypeClusterIP:    "",
		corev1.ServiceTypeNodePort:     corev1.ServiceExternalTrafficPolicyLocal,
		corev1.ServiceTypeLoadBalancer: corev1.ServiceExternalTrafficPolicyLocal,
	}
	for typ, policy := range policies {
		shop := newShop(func(s *shopv1.Shop) { s.Spec.Gateway.Service.Type = typ })
		if got := AppService(shop, Gateway).Spec; got.Type != typ || got.ExternalTrafficPolicy != policy {
			t.Errorf("gateway service type %s, traffic policy %q; want %s, %q", got.Type, got.ExternalTrafficPolicy, typ, policy)
		}
		if got := AppService(shop, User).Spec.Type; got != corev1.ServiceTypeClusterIP {
			t.Errorf("user service type %s, want ClusterIP", got)
		}
	}
	if got := Endpoint(newShop()); got != "http://demo-gateway.shops.svc:80" {
		t.Errorf("endpoint %q", got)
	}
}

// envNames lists the names of env in order.
func envNames(env []corev1.EnvVar) []string {
	var out []string
	for _, e := range env {
		out = append(out, e.Name)
	}
	return out
}

// envValues maps the names of env set inline to their values.
func envValues(env []corev1.EnvVar) map[string]string {
	out := map[string]string{}
	for _, e := range env {
		out[e.Name] = e.Value
	}
	return out
}

// mountsOf describes mounts as "volume:path", with "<subPath" when one is set.
func mountsOf(mounts []corev1.VolumeMount) []string {
	var out []string
	for _, m := range mounts {
		d := m.Name + ":" + m.MountPath
		if m.SubPath != "" {
			d += "<" + m.SubPath
		}
		out = append(out, d)
	}
	return out
}

// volumeNamed returns the volume called name, or an empty one.
func volumeNamed(volumes []corev1.Volume, name string) corev1.Volume {
	for _, v := range volumes {
		if v.Name == name {
			return v
		}
	}
	return corev1.Volume{}
}

// TestStoreClaimStorageClass: a claim asks for the class the Shop names, and for the
// cluster's default (no class field) otherwise, an empty name included: on a claim ""
// means no class at all, which nothing provisions.
func TestStoreClaimStorageClass(t *testing.T) {
	tests := []struct {
		name    string
		storage *shopv1.StorageSpec
		want    *string
	}{
		{"no storage", nil, nil},
		{"size only", &shopv1.StorageSpec{Size: ptr.To(resource.MustParse("2Gi"))}, nil},
		{"named class", &shopv1.StorageSpec{StorageClassName: ptr.To("fast")}, ptr.To("fast")},
		{"empty class", &shopv1.StorageSpec{StorageClassName: ptr.To("")}, nil},
	}
	for _, store := range []string{MongoDB, RabbitMQ} {
		for _, tt := range tests {
			t.Run(store+"/"+tt.name, func(t *testing.T) {
				shop := newShop(func(s *shopv1.Shop) { s.Spec.MongoDB.Storage, s.Spec.RabbitMQ.Storage = tt.storage, tt.storage })
				if got := StorePersistentVolumeClaim(shop, store).Spec.StorageClassName; !ptr.Equal(got, tt.want) {
					t.Errorf("class %q, want %q", ptr.Deref(got, "<unset>"), ptr.Deref(tt.want, "<unset>"))
				}
			})
		}
	}
}

// TestStoreClaimNamesItsEngine: the document store's claim names the engine whose data it
// holds, which the other engine cannot read (the controller refuses to start the other on
// it); the broker's claim names none.
func TestStoreClaimNamesItsEngine(t *testing.T) {
	for _, engine := range []shopv1.MongoDBEngine{shopv1.EngineMongoDB, shopv1.EngineFerretDB, ""} {
		shop := newShop(func(s *shopv1.Shop) { s.Spec.MongoDB.Engine = engine })
		want := string(shopv1.EngineMongoDB)
		if engine == shopv1.EngineFerretDB {
			want = string(shopv1.EngineFerretDB)
		}
		if got, ok := StorePersistentVolumeClaim(shop, MongoDB).Labels[LabelEngine]; !ok || got != want {
			t.Errorf("engine %q: claim labelled %q (%v), want %q", engine, got, ok, want)
		}
		if got, ok := StorePersistentVolumeClaim(shop, RabbitMQ).Labels[LabelEngine]; ok {
			t.Errorf("the broker's claim labelled engine %q", got)
		}
	}
}

// TestOwnSecretNamesHoldEverySecretMade: every Secret the builders make for a Shop is
// named in OwnSecretNames, which an external store's Secret may not be named as (its URI
// would be overwritten), with either store in the cluster or external.
func TestOwnSecretNamesHoldEverySecretMade(t *testing.T) {
	external := &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "ext", Key: "uri"}}
	for name, shop := range map[string]*shopv1.Shop{
		"in cluster":        newShop(),
		"external MongoDB":  newShop(func(s *shopv1.Shop) { s.Spec.MongoDB.External = external }),
		"external RabbitMQ": newShop(func(s *shopv1.Shop) { s.Spec.RabbitMQ.External = external }),
	} {
		own := OwnSecretNames(shop)
		made := 0
		for _, o := range allObjects(t, shop) {
			if _, ok := o.(*corev1.Secret); ok {
				made++
				if !slices.Contains(own, o.GetName()) {
					t.Errorf("%s: Secret %s made, not among %q", name, o.GetName(), own)
				}
			}
		}
		if made != len(own) {
			t.Errorf("%s: %d Secrets made, %d named: %q", name, made, len(own), own)
		}
	}
}

// TestResourceSettingsListWhatTheBuildersUse: ResourceSettings, whose values the controller
// has the API server check before any pod is made of them, lists a component exactly when
// its container gets the Shop's resources rather than the defaults: claims alone count.
func TestResourceSettingsListWhatTheBuildersUse(t *testing.T) {
	claims := corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpu"}}}
	memory := corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}
	shop := newShop(func(s *shopv1.Shop) {
		s.Spec.Gateway.Resources = claims
		s.Spec.Services.Order.Resources = memory
		s.Spec.RabbitMQ.Resources = &claims
		s.Spec.MongoDB.Resources = &corev1.ResourceRequirements{}
	})
	var got []string
	for _, s := range ResourceSettings(shop) {
		got = append(got, s.Path+"="+s.Component)
	}
	want := []string{"spec.gateway.resources=gateway", "spec.services.order.resources=order", "spec.rabbitmq.resources=rabbitmq"}
	if !slices.Equal(got, want) {
		t.Errorf("settings %q, want %q", got, want)
	}
	conn := connectionsOf(t, shop)
	for _, c := range []struct {
		component string
		got, want corev1.ResourceRequirements
	}{
		{Gateway, templateOf(t, AppWorkload(shop, Gateway, conn)).Spec.Containers[0].Resources, claims},
		{Order, templateOf(t, AppWorkload(shop, Order, conn)).Spec.Containers[0].Resources, memory},
		{RabbitMQ, templateOf(t, StoreStatefulSet(shop, RabbitMQ, nil)).Spec.Containers[0].Resources, claims},
		{User, templateOf(t, AppWorkload(shop, User, conn)).Spec.Containers[0].Resources, defaultAppResources},
		{MongoDB, templateOf(t, StoreStatefulSet(shop, MongoDB, nil)).Spec.Containers[0].Resources, defaultStoreResources},
	} {
		if !equality.Semantic.DeepEqual(c.got, c.want) {
			t.Errorf("%s: resources %+v, want %+v", c.component, c.got, c.want)
		}
	}
}
