package resources

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// kubectl explain shop.spec.rabbitmq tells the author of a broker image of their own which
// files the broker reads: it must name every file the operator mounts into the broker
// (rabbitMQFiles), and the Secret they come from.
func TestCRDRabbitMQDescriptionNamesTheBrokersFiles(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "commerce.shopkeeper.dev_shops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties struct {
							Spec struct {
								Properties struct {
									RabbitMQ struct {
										Description string `json:"description"`
									} `json:"rabbitmq"`
								} `json:"properties"`
							} `json:"spec"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	// controller-gen folds the comment's lines: compare with whitespace made single spaces.
	desc := strings.Join(strings.Fields(crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties.Spec.Properties.RabbitMQ.Description), " ")
	for key, path := range rabbitMQFiles {
		if !strings.Contains(desc, path) {
			t.Errorf("spec.rabbitmq's description does not name %s (key %s of the broker's configuration Secret): %q", path, key, desc)
		}
	}
	if !strings.Contains(desc, "<shop>-rabbitmq-config") {
		t.Errorf("spec.rabbitmq's description does not name the Secret <shop>-rabbitmq-config: %q", desc)
	}
}
