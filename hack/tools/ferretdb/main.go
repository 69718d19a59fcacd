// Command ferretdb runs FerretDB (the MongoDB wire protocol over SQLite) for the
// services' tests, `make run` and the local cluster's FerretDB image.
//
// It embeds github.com/FerretDB/FerretDB/ferretdb rather than installing FerretDB's own
// command, whose module zip lacks build/version/version.txt and panics at start. It
// prints one line "mongodb://HOST:PORT/" on standard output once it listens, so a caller
// may pass port 0 and read the address it got.
//
// As FerretDB's own command and its official image do, it reads its settings from
// FERRETDB_* variables too (a flag given wins): FERRETDB_LISTEN_ADDR,
// FERRETDB_SQLITE_URL (file:DIR/), FERRETDB_LOG_LEVEL, FERRETDB_DEBUG_ADDR and
// FERRETDB_HANDLER, which must be sqlite, the only backend built in. So the operator
// configures this build and the official image the same way.
//
// It also gives every collection the _id index FerretDB's queries can use, which
// FerretDB v1.24.2 itself does not (see idIndexer): without it every lookup by _id reads
// the whole collection.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served on -debug-addr
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// flags are the command's flags.
type flags struct {
	listen, dataDir, logLevel, debugAddr string
	synchronous                          string
}

func main() {
	var o flags
	dataDir, err := envDefaults(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(2)
	}
	flag.StringVar(&o.listen, "listen-addr", envOr("FERRETDB_LISTEN_ADDR", "127.0.0.1:27017"), "TCP address to listen on (port 0 picks a free one)")
	flag.StringVar(&o.dataDir, "data-dir", dataDir, "folder of the SQLite databases")
	flag.StringVar(&o.logLevel, "log-level", envOr("FERRETDB_LOG_LEVEL", "warn"), "log level: debug, info, warn or error")
	flag.StringVar(&o.debugAddr, "debug-addr", os.Getenv("FERRETDB_DEBUG_ADDR"), "TCP address serving /debug/pprof (profiles of this process); empty: none")
	// normal is what a standalone mongod does by default too: a write is acknowledged
	// before its journal reaches the disk (within 100 ms there).
	flag.StringVar(&o.synchronous, "sqlite-synchronous", "normal",
		"SQLite's synchronous setting: normal (a commit survives a crash of this process; the last ones may not "+
			"survive a crash of the machine) or full (every commit is on disk before it is acknowledged)")
	flag.Parse()

	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

// envOr is the variable name's value, or def when it is unset or empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// envDefaults checks FERRETDB_HANDLER and turns FERRETDB_SQLITE_URL (file:DIR/, as
// FerretDB's own command takes it) into the data folder; "data" when it is unset.
func envDefaults(getenv func(string) string) (dataDir string, err error) {
	if h := getenv("FERRETDB_HANDLER"); h != "" && h != "sqlite" {
		return "", fmt.Errorf("FERRETDB_HANDLER=%s: this build has only the sqlite backend", h)
	}
	u := getenv("FERRETDB_SQLITE_URL")
	if u == "" {
		return "data", nil
	}
	dir, ok := strings.CutPrefix(u, "file:")
	if dir, _, _ = strings.Cut(dir, "?"); !ok || dir == "" || !strings.HasSuffix(dir, "/") {
		return "", fmt.Errorf("FERRETDB_SQLITE_URL=%s: want file:DIR/", u)
	}
	return dir, nil
}

func run(o flags) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	if o.synchronous != "full" && o.synchronous != "normal" {
		return fmt.Errorf("-sqlite-synchronous: %q is neither full nor normal", o.synchronous)
	}
	if o.debugAddr != "" {
		// net/http/pprof registers its handlers on the default mux.
		go func() { _ = http.ListenAndServe(o.debugAddr, nil) }() //nolint:gosec // a local profiling port, off by default
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Before serving, so that a restarted server answers by _id from the index at once.
	indexer := idIndexer{dir: dir, interval: 500 * time.Millisecond, log: logger}
	indexer.sweep(ctx)

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: o.listen},
		Logger:   logger,
		Handler:  "sqlite",
		// FerretDB adds its own defaults (WAL journal, busy timeout) to these.
		SQLiteURL: "file:" + dir + "/?_pragma=synchronous(" + o.synchronous + ")",
	})
	if err != nil {
		return err
	}

	go indexer.run(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	fmt.Println(f.MongoDBURI())
	return <-done
}
