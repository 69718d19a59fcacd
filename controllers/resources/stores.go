package resources

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// storeUID is the user of the official mongo and rabbitmq images, and of the
// RabbitMQ image made for the local cluster.
const storeUID = 999

// defaultStoreResources fit a small single-instance store.
var defaultStoreResources = requirements("100m", "256Mi", "1Gi")

// storeResources are the resources of an in-cluster store's container: the Shop's, else the
// defaults.
func storeResources(spec shopv1.StoreSpec) corev1.ResourceRequirements {
	return resourcesOr(spec.Resources, defaultStoreResources)
}

// store is what distinguishes one in-cluster store from the other.
type store struct {
	name     string
	spec     shopv1.StoreSpec
	image    string
	port     int32
	portName string
	env      []corev1.EnvVar
	dataPath string
	scratch  map[string]string
	uid      int64
	callers  []string
	// files maps keys of Secret filesFrom to the paths where the store reads them.
	filesFrom string
	files     map[string]string
	// checksums are the keys of that Secret whose values the pods read at start.
	checksums []string
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
	var s store
	switch {
	case name == MongoDB && shop.Spec.MongoDB.Engine == shopv1.EngineFerretDB:
		s = ferretDBStore(shop)
	case name == MongoDB:
		creds := CredentialsSecretName(shop, MongoDB)
		s = store{
			name:     MongoDB,
			spec:     shop.Spec.MongoDB.StoreSpec,
			image:    shopv1.DefaultMongoDBImage,
			port:     MongoDBPort,
			portName: "mongodb",
			dataPath: "/data/db",
			// mongod writes its socket to /tmp; the entrypoint keeps state in /data/configdb.
			scratch:   map[string]string{"tmp": "/tmp", "configdb": "/data/configdb"},
			uid:       storeUID,
			callers:   mongoDBCallers,
			checksums: []string{UsernameKey, PasswordKey},
			env: []corev1.EnvVar{
				secretEnv("MONGO_INITDB_ROOT_USERNAME", creds, UsernameKey),
				secretEnv("MONGO_INITDB_ROOT_PASSWORD", creds, PasswordKey),
			},
		}
	case name == RabbitMQ:
		s = store{
			name:     RabbitMQ,
			spec:     shop.Spec.RabbitMQ.StoreSpec,
			image:    shopv1.DefaultRabbitMQImage,
			port:     RabbitMQPort,
			portName: "amqp",
			// Data, and the Erlang cookie in HOME, live on the volume. With the logs on
			// standard output the node writes only the (empty) upgrade log, and an Erlang
			// crash dump, to /var/log/rabbitmq.
			dataPath:  "/var/lib/rabbitmq",
			scratch:   map[string]string{"tmp": "/tmp", "log": "/var/log/rabbitmq"},
			uid:       storeUID,
			callers:   []string{Order, Payment},
			filesFrom: RabbitMQConfigSecretName(shop),
			files:     rabbitMQFiles,
			checksums: slices.Sorted(maps.Keys(rabbitMQFiles)),
		}
	default:
		panic("resources: unknown store " + name)
	}
	if s.spec.Image != "" {
		s.image = s.spec.Image
	}
	return s
}

// mongoDBCallers are the services with a database of their own.
var mongoDBCallers = []string{User, Product, Order, Payment}

// ferretDBStore is the MongoDB store with engine FerretDB: FerretDB over SQLite files
// in the volume. It is set through FerretDB's own FERRETDB_* variables, which its
// official image (entrypoint /ferretdb) and a build of its cmd/ferretdb read alike,
// and it checks no credentials (the NetworkPolicy guards it). Every location is
// set, so none of an image's defaults (FerretDB's state in /state, say) applies.
func ferretDBStore(shop *shopv1.Shop) store {
	return store{
		name:     MongoDB,
		spec:     shop.Spec.MongoDB.StoreSpec,
		image:    shopv1.DefaultFerretDBImage,
		port:     MongoDBPort,
		portName: "mongodb",
		dataPath: "/data",
		// SQLite puts temporary files of large sorts in /tmp; the official image has none.
		scratch: map[string]string{"tmp": "/tmp"},
		// A static binary that needs no account: the user of distroless images.
		uid:     nonRootID,
		callers: mongoDBCallers,
		env: []corev1.EnvVar{
			{Name: "FERRETDB_HANDLER", Value: "sqlite"},
			{Name: "FERRETDB_SQLITE_URL", Value: "file:/data/"},
			{Name: "FERRETDB_LISTEN_ADDR", Value: ":" + strconv.Itoa(MongoDBPort)},
			// state.json (an instance id) next to the databases, not in the image.
			{Name: "FERRETDB_STATE_DIR", Value: "/data"},
			// Metrics and pprof stay inside the pod.
			{Name: "FERRETDB_DEBUG_ADDR", Value: "127.0.0.1:8088"},
			{Name: "FERRETDB_TELEMETRY", Value: "disable"},
		},
	}
}

// StoreStatefulSet runs the single instance of an in-cluster store (statefulSet: its
// replacement starts only once it is gone, as two must never share the ReadWriteOnce
// volume). read is the Secret whose values the store's pods read at start: the
// credentials Secret for MongoDB, the configuration Secret for RabbitMQ
// (RabbitMQConfigSecret), nil for FerretDB, which reads none.
func StoreStatefulSet(shop *shopv1.Shop, name string, read *corev1.Secret) *appsv1.StatefulSet {
	s := storeFor(shop, name)
	var data map[string][]byte
	if read != nil {
		data = read.Data
	}
	volumes, mounts := scratchVolumes(s.scratch)
	volumes = append(volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: Name(shop, name)},
	}})
	mounts = append(mounts, corev1.VolumeMount{Name: "data", MountPath: s.dataPath})
	if len(s.files) > 0 {
		v, m := secretFileVolume("config", s.filesFrom, s.files)
		volumes, mounts = append(volumes, v), append(mounts, m...)
	}
	return statefulSet(shop, name, 1, corev1.PodTemplateSpec{
		ObjectMeta: podTemplateMeta(shop, name, checksum(nil, data, s.checksums...)),
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
				Env:             s.env,
				Ports:           []corev1.ContainerPort{{Name: s.portName, ContainerPort: s.port, Protocol: corev1.ProtocolTCP}},
				// Stores start slowly (RabbitMQ boots Erlang): liveness waits, readiness
				// polls. A TCP check works with every image and costs nothing, where
				// `rabbitmq-diagnostics ping` boots an Erlang VM per probe. RabbitMQ
				// opens its listener only once its user and virtual host exist.
				LivenessProbe:   tcpProbe(s.portName, 60, 20, 6),
				ReadinessProbe:  tcpProbe(s.portName, 5, 5, 3),
				Resources:       storeResources(s.spec),
				SecurityContext: containerSecurityContext(),
				VolumeMounts:    mounts,
			}},
			Volumes: volumes,
		},
	})
}

// secretFileVolume mounts keys of Secret name as single files at their paths
// (files maps key to path). Each is mounted by subPath, so the files an image keeps
// next to them (the official RabbitMQ image's conf.d/10-defaults.conf) stay. A
// file mounted by subPath does not follow later changes of the Secret: the pod
// template's checksum rolls the pods instead. The files are readable by the pod's
// group only (fsGroup), as they hold a password.
func secretFileVolume(volume, name string, files map[string]string) (corev1.Volume, []corev1.VolumeMount) {
	v := corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: name, DefaultMode: ptr.To[int32](0o440),
	}}}
	var mounts []corev1.VolumeMount
	for _, key := range slices.Sorted(maps.Keys(files)) {
		v.Secret.Items = append(v.Secret.Items, corev1.KeyToPath{Key: key, Path: key})
		mounts = append(mounts, corev1.VolumeMount{Name: volume, MountPath: files[key], SubPath: key, ReadOnly: true})
	}
	return v, mounts
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
				Name: s.portName, Port: s.port, TargetPort: intstr.FromString(s.portName), Protocol: corev1.ProtocolTCP,
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
		// The API refuses an empty class; were one stored anyway (made before that
		// rule), "" on a claim would mean no class and no volume, never the default.
		if ptr.Deref(st.StorageClassName, "") != "" {
			class = st.StorageClassName
		}
	}
	meta := objectMeta(shop, Name(shop, name), name)
	if name == MongoDB {
		meta.Labels[LabelEngine] = string(MongoDBEngine(shop))
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: meta,
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: class,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
}

// MongoDBEngine is the engine of shop's in-cluster document store: MongoDB unless the Shop
// names FerretDB.
func MongoDBEngine(shop *shopv1.Shop) shopv1.MongoDBEngine {
	if shop.Spec.MongoDB.Engine == shopv1.EngineFerretDB {
		return shopv1.EngineFerretDB
	}
	return shopv1.EngineMongoDB
}

// StoreEngine is the engine a document store's StatefulSet runs, told by the variables its
// builder gives each (MONGO_INITDB_*, FERRETDB_*); "" when neither.
func StoreEngine(st *appsv1.StatefulSet) shopv1.MongoDBEngine {
	for _, c := range st.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			switch {
			case strings.HasPrefix(e.Name, "FERRETDB_"):
				return shopv1.EngineFerretDB
			case strings.HasPrefix(e.Name, "MONGO_INITDB_"):
				return shopv1.EngineMongoDB
			}
		}
	}
	return ""
}
