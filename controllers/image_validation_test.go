package controllers

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// The API server refuses an image the kubelet cannot parse (distribution/reference's
// ParseNormalizedNamed), so that a typo is told at once rather than, minutes later, as an
// image that cannot be pulled. Every case is a dry-run create against the real API server:
// the CRD's CEL rules run, nothing is stored.
var _ = Describe("A Shop's images", func() {
	const (
		servicesMessage   = "image must be a repository such as ghcr.io/shopkeeper-dev/shopkeeper-services"
		storeMessage      = "image must be an image reference such as mongo:8.0"
		taggedMessage     = "image is a repository without tag or digest"
		identifierMessage = "image cannot be 64 hexadecimal digits alone"
		lengthMessage     = "must be at most 237 characters"
	)
	digest := "@sha256:" + strings.Repeat("0123456789abcdef", 4)

	// Each field is set by its own function and refuses a malformed image with its own
	// message; the tables run every value against every field it applies to.
	type field struct {
		path    string
		set     func(*shopv1.Shop, string)
		message string
	}
	services := field{"spec.image", func(s *shopv1.Shop, v string) { s.Spec.Image = v }, servicesMessage}
	mongodb := field{"spec.mongodb.image", func(s *shopv1.Shop, v string) { s.Spec.MongoDB.Image = v }, storeMessage}
	rabbitmq := field{"spec.rabbitmq.image", func(s *shopv1.Shop, v string) { s.Spec.RabbitMQ.Image = v }, storeMessage}
	stores := []field{mongodb, rabbitmq}
	every := []field{services, mongodb, rabbitmq}

	dryRunCreate := func(shop *shopv1.Shop) error {
		return k8sClient.Create(ctx, shop, client.DryRunAll)
	}

	DescribeTable("are refused, with a message a person understands, when the kubelet could not parse them",
		// message is the one expected when it is not the field's own for a malformed image.
		func(value string, fields []field, message string) {
			for _, f := range fields {
				shop := minimalShop(unwatchedNamespace, "badimage")
				f.set(shop, value)
				err := dryRunCreate(shop)
				Expect(err).To(HaveOccurred(), "%s: %q was accepted", f.path, value)
				Expect(err.Error()).To(And(ContainSubstring(f.path+": "), ContainSubstring(cmp.Or(message, f.message))), "%s: %q", f.path, value)
				if message != "" {
					Expect(err.Error()).NotTo(ContainSubstring(f.message), "%s: %q is told twice", f.path, value)
				}
			}
		},
		Entry("an upper-case path", "Foo/Bar", every, ""),
		Entry("a trailing slash", "ghcr.io/shopkeeper-dev/", every, ""),
		Entry("an empty path component", "ghcr.io//x", every, ""),
		Entry("a component starting with a dash", "-x/y", every, ""),
		Entry("a space", "mongo 8", every, ""),
		Entry("a separator ending a component", "ghcr.io/shopkeeper./services", every, ""),
		Entry("two dots inside a component", "library/mon..go", every, ""),
		Entry("a host ending with a dash", "registry-.example.com/team/app", every, ""),
		Entry("a port that is no number", "registry.example.com:http/team/app", every, ""),
		Entry("a bracketed host that is no IPv6 address", "[registry]/team/app", every, ""),
		Entry("a tag on the services' repository", "registry.local/shop:v1", []field{services}, taggedMessage),
		Entry("a digest on the services' repository", "ghcr.io/shopkeeper-dev/shopkeeper-services"+digest, []field{services}, taggedMessage),
		Entry("an empty tag", "mongo:", stores, ""),
		Entry("a tag starting with a dot", "mongo:.8", stores, ""),
		Entry("a tag of 129 characters", "mongo:"+strings.Repeat("8", 129), stores, ""),
		Entry("two tags", "mongo:8:0", stores, ""),
		Entry("a digest too short for its algorithm", "mongo@sha256:"+strings.Repeat("0", 32), stores, ""),
		Entry("a digest in upper-case hexadecimal", "mongo@sha256:"+strings.Repeat("0123456789ABCDEF", 4), stores, ""),
		Entry("a digest of an algorithm the kubelet does not know", "mongo@md5:"+strings.Repeat("0", 32), stores, ""),
		Entry("a digest before the tag", "mongo"+digest+":8.0", stores, ""),
		Entry("an image ID", strings.Repeat("0123456789abcdef", 4), stores, identifierMessage),
		// The kubelet refuses a name over 255 characters, docker.io/library/ included.
		Entry("a name of 238 characters", strings.Repeat("a", 238), every, lengthMessage),
		Entry("a name of 238 characters with a tag", strings.Repeat("a", 238)+":8.0", stores, lengthMessage),
		Entry("a name of 238 characters with a registry and a digest", "localhost:5000/"+strings.Repeat("a", 223)+digest, stores, lengthMessage),
	)

	DescribeTable("are accepted when they are references the kubelet parses",
		func(value string, fields []field) {
			for _, f := range fields {
				shop := minimalShop(unwatchedNamespace, "goodimage")
				f.set(shop, value)
				Expect(dryRunCreate(shop)).To(Succeed(), "%s: %q", f.path, value)
			}
		},
		Entry("the services' default", shopv1.DefaultImage, every),
		Entry("a localhost repository", "localhost/shopkeeper/rabbitmq", every),
		Entry("a registry with a port", "registry.example.com:5000/team/app", every),
		Entry("a registry at an IPv6 address", "[fd00::1]:5000/team/app", every),
		Entry("an upper-case registry host", "Registry.Example.com/team/app", every),
		Entry("an official image", "mongo", every),
		Entry("an official image with its namespace", "library/mongo", every),
		Entry("every separator", "registry.example.com/a.b_c__d-e--f/g", every),
		Entry("MongoDB's default", shopv1.DefaultMongoDBImage, stores),
		Entry("FerretDB's default", shopv1.DefaultFerretDBImage, stores),
		Entry("RabbitMQ's default", shopv1.DefaultRabbitMQImage, stores),
		Entry("the local cluster's FerretDB", "localhost/shopkeeper/ferretdb:v1.24.2", stores),
		Entry("the local cluster's RabbitMQ", "localhost/shopkeeper/rabbitmq:v0.1.0", stores),
		Entry("a registry's image with a tag", "registry.local/rabbitmq:4.1", stores),
		Entry("an image no one serves, as the end-to-end suite names it", "localhost/shopkeeper/no-such-image:v0", stores),
		Entry("a tag and a digest", "rabbitmq:4.1-management"+digest, stores),
		Entry("a digest alone", "rabbitmq"+digest, stores),
		Entry("a sha512 digest", "rabbitmq@sha512:"+strings.Repeat("0", 128), stores),
		Entry("a full reference", "docker.io/library/mongo:8.0.4", stores),
		Entry("a port with a tag", "localhost:5000/mongo:8.0", stores),
		Entry("a tag of 128 characters", "mongo:"+strings.Repeat("8", 128), stores),
		Entry("a name of 237 characters", strings.Repeat("a", 237), every),
		Entry("a name of 237 characters with a registry, a tag and a digest", "localhost:5000/"+strings.Repeat("a", 222)+":"+strings.Repeat("8", 128)+digest, stores),
	)

	It("may be empty for a store, which means its default", func() {
		// A typed Shop omits an empty image: write the field as a user's manifest may.
		shop := &unstructured.Unstructured{}
		shop.SetGroupVersionKind(shopv1.GroupVersion.WithKind("Shop"))
		shop.SetNamespace(unwatchedNamespace)
		shop.SetName("emptyimage")
		Expect(unstructured.SetNestedField(shop.Object, "v0.1.0", "spec", "version")).To(Succeed())
		Expect(unstructured.SetNestedField(shop.Object, "", "spec", "mongodb", "image")).To(Succeed())
		Expect(unstructured.SetNestedField(shop.Object, "", "spec", "rabbitmq", "image")).To(Succeed())
		Expect(k8sClient.Create(ctx, shop, client.DryRunAll)).To(Succeed())
	})

	It("are accepted as the samples in config/samples write them", func() {
		var samples []string
		Expect(filepath.WalkDir(filepath.Join("..", "config", "samples"), func(path string, _ os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(path, ".yaml") && filepath.Base(path) != "kustomization.yaml" {
				samples = append(samples, path)
			}
			return err
		})).To(Succeed())
		Expect(samples).NotTo(BeEmpty())
		for _, path := range samples {
			data, err := os.ReadFile(path)
			Expect(err).NotTo(HaveOccurred())
			shop := &shopv1.Shop{}
			Expect(yaml.UnmarshalStrict(data, shop)).To(Succeed(), path)
			Expect(shop.Kind).To(Equal("Shop"), path)
			shop.Namespace = unwatchedNamespace
			Expect(dryRunCreate(shop)).To(Succeed(), fmt.Sprintf("%s (images %q, %q, %q)",
				path, shop.Spec.Image, shop.Spec.MongoDB.Image, shop.Spec.RabbitMQ.Image))
		}
	})
})
