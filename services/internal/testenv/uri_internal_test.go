package testenv

import "testing"

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
