package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver FerretDB uses, registered as "sqlite"
)

// FerretDB v1.24.2's SQLite backend creates each collection's _id index on the
// expression _ferretdb_sjson->"_id", but filters by _id with _ferretdb_sjson->'$._id'
// (metadata.IDColumn). SQLite matches an indexed expression to a query only when both
// are written the same, so that index is never used: every find, update and delete by
// _id reads and parses every document of the collection, and its cost grows with the
// collection (measured on the order flow: 70 ms of FerretDB CPU per order at 500 orders
// stored, two thirds of it in SQLite's JSON parser).
//
// idIndexer adds the index FerretDB's queries can use: on _ferretdb_sjson->'$._id', for
// every collection table of every database in the data folder, at start and then as
// collections appear. FerretDB knows nothing of it (listIndexes does not show it); its
// own unique index still enforces uniqueness, and dropping the collection drops both.
//
// It opens each database file with a connection of its own, for a moment, never
// creating a file. A database dropped while that connection is open is cleaned up by
// it as by FerretDB; one dropped and created again under the same name within that
// moment could receive the old write-ahead log, so this is only for servers whose
// databases are not dropped and recreated under the same name at once (the services
// never drop one; their tests use a new name each time).
type idIndexer struct {
	dir      string
	interval time.Duration
	log      *slog.Logger
}

// idIndexPrefix starts the names of the indexes idIndexer makes. FerretDB names its
// indexes <table>_<index name>, and no table name starts with FerretDB's reserved
// prefix, so these cannot collide with them.
const idIndexPrefix = "_ferretdb_id_path_"

// run indexes every database now and then every interval until ctx ends.
func (x idIndexer) run(ctx context.Context) {
	t := time.NewTicker(x.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			x.sweep(ctx)
		}
	}
}

// sweep indexes the collection tables of every database file that lack the index.
func (x idIndexer) sweep(ctx context.Context) {
	files, err := filepath.Glob(filepath.Join(x.dir, "*.sqlite"))
	if err != nil {
		x.log.Warn("list databases", "error", err)
		return
	}
	for _, f := range files {
		created, err := indexDatabase(ctx, f)
		for _, table := range created {
			x.log.Info("made the _id index FerretDB queries use", "database", f, "table", table)
		}
		if err != nil && ctx.Err() == nil {
			if _, statErr := os.Stat(f); errors.Is(statErr, os.ErrNotExist) {
				continue // dropped meanwhile
			}
			x.log.Warn("index _id", "database", f, "error", err)
		}
	}
}

// indexDatabase creates the missing _id indexes in the database file path and returns
// the tables it indexed. A file that is not (yet) a FerretDB database is left alone.
func indexDatabase(ctx context.Context, path string) ([]string, error) {
	q := url.Values{}
	q.Set("mode", "rw") // never create a database file
	q.Add("_pragma", "busy_timeout(10000)")
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Opaque: path, RawQuery: q.Encode()}).String())
	if err != nil {
		return nil, err
	}
	defer func() { _ = db.Close() }()
	db.SetMaxOpenConns(1)

	var found bool
	err = db.QueryRowContext(ctx, `SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_ferretdb_collections'`).Scan(&found)
	if err != nil || !found {
		return nil, err // not a FerretDB database yet: its metadata table comes first
	}
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections
		WHERE ? || table_name NOT IN (SELECT name FROM sqlite_master WHERE type = 'index')`, idIndexPrefix)
	if err != nil {
		return nil, err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			_ = rows.Close()
			return nil, err
		}
		tables = append(tables, t)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	var created []string
	for _, t := range tables {
		stmt := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s (_ferretdb_sjson->'$._id')`, quoteIdent(idIndexPrefix+t), quoteIdent(t))
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return created, fmt.Errorf("table %s: %w", t, err)
		}
		created = append(created, t)
	}
	return created, nil
}

// quoteIdent quotes a SQLite identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
