package storeuri_test

import (
	"strings"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
)

const password = "s3cret"

// TestParseMongoDB: URIs the driver would refuse at connect are refused here, without
// a DNS lookup for mongodb+srv, and the error never shows the password.
func TestParseMongoDB(t *testing.T) {
	tests := []struct {
		uri     string
		wantErr string // "" for valid
		wantDB  string
	}{
		{uri: "mongodb://shop:" + password + "@db:27017/orders?authSource=admin", wantDB: "orders"},
		{uri: "mongodb://db-0:27017,db-1:27017/?replicaSet=rs0"},
		{uri: "mongodb+srv://shop:" + password + "@cluster.example.invalid/orders", wantDB: "orders"},
		{uri: "mongodb+srv://shop:" + password + "@cluster.example.invalid:27017/", wantErr: "no port"},
		{uri: "mongodb+srv://a.example.invalid,b.example.invalid/", wantErr: "one host"},
		// SRV's own options, however the driver reads them: after a ";" as after a "&", a name
		// %-escaped.
		{uri: "mongodb+srv://cluster.example.invalid/?tls=true;srvMaxHosts=2"},
		{uri: "mongodb+srv://cluster.example.invalid/?srvServiceNam%65=mongo"},
		{uri: "mongodb://shop:" + password + "@db:99999/", wantErr: "port"},
		{uri: "mongodb://shop:" + password + "@db/?w=0&journal=true", wantErr: "w=0"},
		{uri: "postgres://shop:" + password + "@db/", wantErr: "scheme"},
		{uri: "", wantErr: "scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			cs, err := storeuri.ParseMongoDB(tt.uri)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if cs.Database != tt.wantDB {
					t.Errorf("database %q, want %q", cs.Database, tt.wantDB)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not say %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// TestCheckAMQP: URLs the AMQP client cannot dial are refused with what is wrong, never
// the password.
func TestCheckAMQP(t *testing.T) {
	tests := []struct {
		url     string
		wantErr string // "" for valid
	}{
		{url: "amqp://shop:" + password + "@rabbitmq:5672/shop"},
		{url: "amqps://shop:" + password + "@rabbitmq/"},
		{url: "http://shop:" + password + "@rabbitmq:5672/", wantErr: "scheme"},
		{url: "rabbitmq:5672", wantErr: "scheme"},
		{url: "amqp://shop:" + password + "@rabbitmq:notaport/", wantErr: "invalid port"},
		{url: "amqp://shop:" + password + "@rabbitmq:99999/", wantErr: "port 99999"},
		{url: "amqp://shop:" + password + "@rabbitmq:0/", wantErr: "port 0 is not between 1 and 65535"},
		// net/url takes the password's digits for a port, and the rest for a fragment.
		{url: "amqp://shop:123456#" + password + "@rabbitmq:5672/", wantErr: "port xxxxx is not"},
		{url: "amqp://shop:s3/cret@rabbitmq:5672/", wantErr: "percent-encoded"},
		// net/url takes "shop:Kq9ZtAbCdEf" for the host and quotes its "port".
		{url: "amqp://shop:Kq9ZtAbCdEf/rest@rabbitmq:5672/", wantErr: "percent-encoded"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := storeuri.CheckAMQP(tt.url)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not say %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "s3/cret") || strings.Contains(err.Error(), "Kq9ZtAbCdEf") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}
