package resources

import (
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// storeUID is the user of the official mongo and rabbitmq images.
const storeUID = 999

// defaultStoreResources fit a small single-instance store.
var defaultStoreResources = requirements("100m", "256Mi", "1Gi")

// store is what distinguishes one in-cluster store from the other.
type store struct {
	name      string
	spec      shopv1.StoreSpec
	image     string
	command   []string
	args      []string
	port      int32
	ports     []corev1.ContainerPort
	env       []corev1.EnvVar
	dataPath  string
	scratch   map[string]string
	uid       int64
	readOnly  bool
	callers   []string
	checksums []string // credentials keys the pods read
}

// InClusterStores are the stores the shop runs in the cluster, in the order they are
// applied; a store with `external` set is not among them.
func InClusterStores(shop *shopv1.Shop) []string {
	var out []string
	if shop.Spec.MongoDB.External == nil {
		out = append(out, MongoDB)
	}
	if shop.Spec.RabbitMQ.External == nil {
		out = append(out, RabbitMQ)
	}
	return out
}

// storeFor describes the in-cluster store name of shop.
func storeFor(shop *shopv1.Shop, name string) store {
	creds := CredentialsSecretName(shop, name)
	switch name {
	case MongoDB:
		s := store{
			name:     MongoDB,
			spec:     shop.Spec.MongoDB.StoreSpec,
			image:    shopv1.DefaultMongoDBImage,
			port:     MongoDBPort,
			dataPath: "/data/db",
			// mongod writes its socket to /tmp; the entrypoint keeps state in /data/configdb.
			scratch:   map[string]string{"tmp": "/tmp", "configdb": "/data/configdb"},
			uid:       storeUID,
			readOnly:  true,
			callers:   []string{User, Product, Order, Payment},
			checksums: []string{UsernameKey, PasswordKey},
			env: []corev1.EnvVar{
				secretEnv("MONGO_INITDB_ROOT_USERNAME", creds, UsernameKey),
				secretEnv("MONGO_INITDB_ROOT_PASSWORD", creds, PasswordKey),
			},
		}
		if shop.Spec.MongoDB.Engine == shopv1.EngineFerretDB {
			// FerretDB over SQLite from the services image: our binary, our user, no credentials.
			s.image = servicesImage(shop)
			s.command = []string{"/ferretdb"}
			s.args = []string{"-listen-addr", "0.0.0.0:" + strconv.Itoa(MongoDBPort), "-data-dir", "/data"}
			s.dataPath = "/data"
			s.scratch = map[string]string{"tmp": "/tmp"}
			s.uid = nonRootID
			s.env = nil
			s.checksums = nil
		}
		if s.spec.Image != "" {
			s.image = s.spec.Image
		}
		s.ports = []corev1.ContainerPort{{Name: "mongodb", ContainerPort: MongoDBPort, Protocol: corev1.ProtocolTCP}}
		return s
	case RabbitMQ:
		s := store{
			name:     RabbitMQ,
			spec:     shop.Spec.RabbitMQ.StoreSpec,
			image:    shopv1.DefaultRabbitMQImage,
			port:     RabbitMQPort,
			dataPath: "/var/lib/rabbitmq",
			uid:      storeUID,
			// The image's entrypoint and the node write configuration and logs outside
			// the data volume at start, so its root filesystem stays writable.
			readOnly:  false,
			callers:   []string{Order, Payment},
			checksums: []string{UsernameKey, PasswordKey},
			env: []corev1.EnvVar{
				secretEnv("RABBITMQ_DEFAULT_USER", creds, UsernameKey),
				secretEnv("RABBITMQ_DEFAULT_PASS", creds, PasswordKey),
				{Name: "RABBITMQ_DEFAULT_VHOST", Value: RabbitMQVhost},
			},
			ports: []corev1.ContainerPort{
				{Name: "amqp", ContainerPort: RabbitMQPort, Protocol: corev1.ProtocolTCP},
				{Name: "management", ContainerPort: 15672, Protocol: corev1.ProtocolTCP},
			},
		}
		if s.spec.Image != "" {
			s.image = s.spec.Image
		}
		return s
	}
	panic("resources: unknown store " + name)
}

// StoreDeployment is the single-instance Deployment of an in-cluster store. It uses
// the Recreate strategy: two pods must never share the ReadWriteOnce volume. creds is
// the store's credentials Secret (nil for FerretDB, which reads none).
func StoreDeployment(shop *shopv1.Shop, name string, creds *corev1.Secret) *appsv1.Deployment {
	s := storeFor(shop, name)
	var data map[string][]byte
	if creds != nil {
		data = creds.Data
	}
	volumes, mounts := scratchVolumes(s.scratch)
	volumes = append(volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: Name(shop, name)},
	}})
	mounts = append(mounts, corev1.VolumeMount{Name: "data", MountPath: s.dataPath})
	portName := s.ports[0].Name
	return &appsv1.Deployment{
		ObjectMeta: objectMeta(shop, Name(shop, name), name),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: selector(shop, name),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: podTemplateMeta(shop, name, checksum(data, s.checksums...)),
				Spec: corev1.PodSpec{
					SecurityContext:              podSecurityContext(s.uid),
					ImagePullSecrets:             shop.Spec.ImagePullSecrets,
					AutomountServiceAccountToken: ptr.To(false),
					// A store flushes to disk on SIGTERM; give it time.
					TerminationGracePeriodSeconds: ptr.To[int64](60),
					Containers: []corev1.Container{{
						Name:            name,
						Image:           s.image,
						ImagePullPolicy: shop.Spec.ImagePullPolicy,
						Command:         s.command,
						Args:            s.args,
						Env:             s.env,
						Ports:           s.ports,
						// Stores start slowly (RabbitMQ boots Erlang): liveness waits, readiness polls.
						LivenessProbe:   tcpProbe(portName, 60, 20, 6),
						ReadinessProbe:  tcpProbe(portName, 5, 5, 3),
						Resources:       resourcesOr(s.spec.Resources, defaultStoreResources),
						SecurityContext: containerSecurityContext(s.readOnly),
						VolumeMounts:    mounts,
					}},
					Volumes: volumes,
				},
			},
		},
	}
}

// StoreService is the ClusterIP Service in front of an in-cluster store.
func StoreService(shop *shopv1.Shop, name string) *corev1.Service {
	s := storeFor(shop, name)
	return &corev1.Service{
		ObjectMeta: objectMeta(shop, Name(shop, name), name),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: SelectorLabels(shop, name),
			Ports: []corev1.ServicePort{{
				Name: s.ports[0].Name, Port: s.port, TargetPort: intstr.FromString(s.ports[0].Name), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// StorePersistentVolumeClaim is the volume of an in-cluster store.
func StorePersistentVolumeClaim(shop *shopv1.Shop, name string) *corev1.PersistentVolumeClaim {
	s := storeFor(shop, name)
	size := shopv1.DefaultStorageSize
	var class *string
	if st := s.spec.Storage; st != nil {
		if st.Size != nil {
			size = *st.Size
		}
		class = st.StorageClassName
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: objectMeta(shop, Name(shop, name), name),
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: class,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
}
