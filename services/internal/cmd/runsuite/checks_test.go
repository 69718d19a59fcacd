package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

func TestLockLogDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockLogDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockLogDir(dir); err == nil || !strings.Contains(err.Error(), "another suite") {
		t.Fatalf("second lock of one log folder: %v, want another suite named", err)
	}
	unlock()
	again, err := lockLogDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	again()
}

// TestUnreachableRabbitMQURL: a RABBITMQ_URL no broker answers stops the start with a clear
// error, instead of a suite that looks healthy while every order stays PENDING.
// The same when the URL cannot be parsed: the client's error quotes it whole.
func TestUnreachableRabbitMQURL(t *testing.T) {
	for _, u := range []string{"amqp://guest:secret@127.0.0.1:1/", "amqp://guest:Kq9Zt%zzsecret@127.0.0.1:1/"} {
		t.Setenv("RABBITMQ_URL", u)
		s := &suite{logDir: t.TempDir(), exited: make(chan error, 1)}
		_, err := s.startRabbitMQ(context.Background(), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "RABBITMQ_URL: cannot connect") || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error %v, want RABBITMQ_URL named, without its password", u, err)
		}
	}
}

// TestUnusableMongoDBURI: a MONGODB_URI that does not parse, or names no server that
// answers, stops the start with a clear error naming it, before the broker starts (it was
// found only some 30 s later, as "user exited early"), and without its password.
func TestUnusableMongoDBURI(t *testing.T) {
	t.Setenv("MONGODB_CONNECT_TIMEOUT", "1s") // as the services read it
	for _, tt := range []struct{ uri, want string }{
		{"mongodb://root:secret@127.0.0.1:1/", "MONGODB_URI: cannot connect"},
		{"mongodb://root:secret@127.0.0.1:1/?connectTimeoutMS=soon", "MONGODB_URI is not a valid MongoDB connection string"},
		{"not a uri", "MONGODB_URI is not a valid MongoDB connection string"},
	} {
		t.Setenv("MONGODB_URI", tt.uri)
		s := &suite{logDir: t.TempDir(), exited: make(chan error, 1)}
		start := time.Now()
		_, err := s.startMongoDB(context.Background(), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error %v, want %q, without the password", tt.uri, err, tt.want)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: took %s, want about MONGODB_CONNECT_TIMEOUT (1s)", tt.uri, took)
		}
	}
}

// TestInterruptedStart: Ctrl-C while the stores start (here a MongoDB server, or a broker,
// that takes the connection and never answers) is said as such, not as the client's
// "context canceled", and does not wait out the client's timeout.
func TestInterruptedStart(t *testing.T) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	t.Setenv("MONGODB_URI", "mongodb://"+ln.Addr().String()+"/")
	t.Setenv("RABBITMQ_URL", "amqp://guest:guest@"+ln.Addr().String()+"/")
	bin := t.TempDir()
	for _, name := range []string{"user", "product", "order", "payment", "gateway"} {
		if err := os.WriteFile(filepath.Join(bin, name), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err = run(ctx, options{binDir: bin, logDir: t.TempDir(), startTimeout: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "interrupted while starting") || strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("run interrupted while MongoDB is pinged: %v, want it said as an interrupt", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("run interrupted while MongoDB is pinged took %s", took)
	}

	// The broker's dial, which heeds no context.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	s := &suite{logDir: t.TempDir(), exited: make(chan error, 1)}
	if _, err := s.startRabbitMQ(ctx, t.TempDir()); !errors.Is(err, context.Canceled) {
		t.Errorf("broker dial interrupted: %v, want context.Canceled (run says it as an interrupt)", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("broker dial interrupted took %s", took)
	}
}

// TestMongoDBURIWithAPath: the check at start uses the database a service gets
// (MONGODB_DATABASE, storeEnv), not the URI's path, where MongoDB checks credentials and
// which no service uses as its database, nor a MONGODB_DATABASE of the shell's, which
// storeEnv overrides. A path FerretDB takes no database by ("my.shop") stopped the start,
// though every service would have run.
func TestMongoDBURIWithAPath(t *testing.T) {
	f, err := testenv.StartFerretDB(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Stop() })
	uri := strings.TrimSuffix(f.URI, "/") + "/my.shop"
	t.Setenv("MONGODB_URI", uri)
	t.Setenv("MONGODB_DATABASE", "not.a.database")
	s := &suite{logDir: t.TempDir(), exited: make(chan error, 1)}
	got, err := s.startMongoDB(t.Context(), t.TempDir())
	if err != nil || got != uri {
		t.Fatalf("MONGODB_URI with the path /my.shop: %q, %v; want it taken, as the services take it", got, err)
	}
}
