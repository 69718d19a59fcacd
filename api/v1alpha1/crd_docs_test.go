package v1alpha1_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// kubectl explain prints a field's description and its enum, never its default, range
// or CEL rules: a default the description does not state is one a user at a terminal
// never learns. Every field of the spec with a scalar default must say it.
func TestCRDDescriptionsStateDefaults(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "commerce.shopkeeper.dev_shops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, node map[string]any)
	walk = func(path string, node map[string]any) {
		if def, ok := node["default"]; ok {
			if _, isObject := def.(map[string]any); !isObject {
				desc, _ := node["description"].(string)
				if want := fmt.Sprint(def); !strings.Contains(desc, want) {
					t.Errorf("%s: default %q is not in its description (kubectl explain shows only the description): %q", path, want, desc)
				}
			}
		}
		props, _ := node["properties"].(map[string]any)
		for name, p := range props {
			walk(path+"."+name, p.(map[string]any))
		}
		if items, ok := node["items"].(map[string]any); ok {
			walk(path+"[]", items)
		}
	}
	root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	walk("shop.spec", root["properties"].(map[string]any)["spec"].(map[string]any))
}
