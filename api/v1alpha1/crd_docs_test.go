package v1alpha1_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// kubectl explain prints a field's description and its enum, never its default, range
// or CEL rules: a default the description does not state is one a user at a terminal
// never learns. Every field of the spec with a scalar default must say it.
func TestCRDDescriptionsStateDefaults(t *testing.T) {
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
	walk("shop.spec", specSchema(t))
}

// specSchema is the OpenAPI schema of the Shop's spec, as the CRD states it.
func specSchema(t *testing.T) map[string]any {
	t.Helper()
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
	return crd.Spec.Versions[0].Schema.OpenAPIV3Schema["properties"].(map[string]any)["spec"].(map[string]any)
}

// The rules on podAnnotations' size and on the length of one of its values spell
// MaxPodAnnotationsSize out (a marker cannot name a constant): they must agree with it.
func TestCRDPodAnnotationsLimitIsMaxPodAnnotationsSize(t *testing.T) {
	raw, err := json.Marshal(specSchema(t)["properties"].(map[string]any)["podAnnotations"])
	if err != nil {
		t.Fatal(err)
	}
	var annotations struct {
		Description          string `json:"description"`
		AdditionalProperties struct {
			MaxLength int `json:"maxLength"`
		} `json:"additionalProperties"`
		Rules []struct {
			Rule    string `json:"rule"`
			Message string `json:"message"`
		} `json:"x-kubernetes-validations"`
	}
	if err := json.Unmarshal(raw, &annotations); err != nil {
		t.Fatal(err)
	}
	limit := fmt.Sprint(v1alpha1.MaxPodAnnotationsSize)
	if got := annotations.AdditionalProperties.MaxLength; got != v1alpha1.MaxPodAnnotationsSize {
		t.Errorf("podAnnotations values: maxLength %d, want %s", got, limit)
	}
	if !strings.Contains(annotations.Description, "at most "+limit+" bytes") {
		t.Errorf("podAnnotations' description does not state the limit, %s bytes: %q", limit, annotations.Description)
	}
	found := false
	for _, r := range annotations.Rules {
		if strings.Contains(r.Rule, ".sum()") {
			found = true
			if !strings.HasSuffix(r.Rule, "<= "+limit) || !strings.Contains(r.Message, "at most "+limit+" bytes") {
				t.Errorf("podAnnotations' size rule does not hold them to %s bytes: %q, %q", limit, r.Rule, r.Message)
			}
		}
	}
	if !found {
		t.Error("podAnnotations has no size rule")
	}
}
