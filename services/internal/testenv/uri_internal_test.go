package testenv

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestWithDatabase(t *testing.T) {
	tests := []struct {
		name, uri, database, want string
	}{
		{"no slash", "mongodb://127.0.0.1:27017", "shop", "mongodb://127.0.0.1:27017/shop"},
		{"slash", "mongodb://127.0.0.1:27017/", "shop", "mongodb://127.0.0.1:27017/shop"},
		{"no database wanted", "mongodb://127.0.0.1:27017", "", "mongodb://127.0.0.1:27017/"},
		{"database replaced", "mongodb://127.0.0.1:27017/old", "shop", "mongodb://127.0.0.1:27017/shop"},
		{"options kept", "mongodb://a:1,b:2/old?replicaSet=rs0&w=majority", "",
			"mongodb://a:1,b:2/?replicaSet=rs0&w=majority"},
		{"credentials without a database", "mongodb://ada:p%2Fw%40x@db:27017", "shop", "mongodb://ada:p%2Fw%40x@db:27017/shop"},
		{"credentials checked in the old database", "mongodb://ada:pw@db:27017/old?tls=true", "shop",
			"mongodb://ada:pw@db:27017/shop?authSource=old&tls=true"},
		{"authSource kept", "mongodb://ada:pw@db:27017/old?authSource=admin", "shop",
			"mongodb://ada:pw@db:27017/shop?authSource=admin"},
		{"external credentials", "mongodb://CN=ada@db:27017/old?authMechanism=MONGODB-X509&tls=true", "shop",
			"mongodb://CN=ada@db:27017/shop?authMechanism=MONGODB-X509&tls=true"},
		{"srv", "mongodb+srv://cluster.example.com/old?retryWrites=true", "shop",
			"mongodb+srv://cluster.example.com/shop?retryWrites=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := withDatabase(tt.uri, tt.database)
			if err != nil || got != tt.want {
				t.Errorf("withDatabase(%q, %q) = %q, %v; want %q", tt.uri, tt.database, got, err, tt.want)
			}
		})
	}
	// What the driver would refuse is refused here, not passed on to fail later.
	for _, uri := range []string{"http://127.0.0.1:27017", "mongodb://127.0.0.1:27017?directConnection=true"} {
		if got, err := withDatabase(uri, "shop"); err == nil {
			t.Errorf("withDatabase(%q) = %q, want an error", uri, got)
		}
	}
}

func TestManagementURL(t *testing.T) {
	for _, tt := range []struct{ amqp, mgmt, want string }{
		{"amqp://guest:guest@127.0.0.1:5672/", "", "http://guest:guest@127.0.0.1:15672"},
		{"amqp://127.0.0.1:5672/", "", "http://guest:guest@127.0.0.1:15672"}, // the client's default user
		{"amqp://ada:p%2Fw@[::1]:5673/shop", "", "http://ada:p%2Fw@[::1]:15672"},
		{"amqp://ada:pw@mq:5672/", "https://admin:x@mq-admin:443/rabbit", "https://admin:x@mq-admin:443/rabbit"},
	} {
		au, err := url.Parse(tt.amqp)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := managementURL(au, tt.mgmt); err != nil || got.String() != tt.want {
			t.Errorf("managementURL(%q, %q) = %v, %v; want %s", tt.amqp, tt.mgmt, got, err, tt.want)
		}
	}
}

// TestExternalRabbitMQVhostEscapesOnce: a vhost named after a subtest whose name holds ' or ,
// is made under its own name, the one the AMQP URL returned names.
func TestExternalRabbitMQVhostEscapesOnce(t *testing.T) {
	var paths []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		w.WriteHeader(http.StatusCreated)
	}))
	defer api.Close()
	got, err := externalRabbitMQVhost(t.Context(), "TestX/the_peers'_deadline,_passed", "amqp://mq:5672/", api.URL+"/base/")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	vhost := strings.TrimPrefix(u.Path, "/")
	if !strings.HasPrefix(vhost, "test-TestX-the_peers'_deadline,_passed-") {
		t.Fatalf("AMQP URL %s names vhost %q", got, vhost)
	}
	want := []string{"/base/api/vhosts/" + vhost, "/base/api/permissions/" + vhost + "/guest"} // the client's default user
	if !slices.Equal(paths, want) {
		t.Errorf("management API was asked for %q, want %q", paths, want)
	}
}
