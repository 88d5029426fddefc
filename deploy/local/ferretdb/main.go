// Command chorus-ferretdb runs FerretDB 1.x embedded, with the SQLite backend.
//
// We embed FerretDB instead of `go install`ing its command because the
// installed binary panics at start (missing version.txt, FerretDB issue 2982).
package main

import (
	"context"
	"database/sql"
	"flag"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "modernc.org/sqlite"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("dir", "", "absolute path of an existing directory for the SQLite files")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	url := "file:" + *dir
	if url[len(url)-1] != '/' {
		url += "/" // FerretDB requires the SQLite URL to end in a slash
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Handler:   "sqlite",
		SQLiteURL: url,
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go indexIDLookups(ctx, *dir, 250*time.Millisecond)
	log.Printf("FerretDB listening on %s, data in %s", *listen, url)
	if err := f.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// indexIDLookups adds, to every collection table, an index on the expression FerretDB 1.24 uses
// to find a document by _id in updates and deletes (`_ferretdb_sjson->'$._id'`). FerretDB's own
// _id index is on `_ferretdb_sjson->"_id"`, which SQLite cannot use for that expression, so
// without this every update and delete by _id scans its whole table (EXPLAIN QUERY PLAN says
// SCAN; 10,000 documents: ~40 ms per update instead of ~1 ms). The index is plain SQLite:
// FerretDB does not list it, and it goes with the table when a collection is dropped.
func indexIDLookups(ctx context.Context, dir string, every time.Duration) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		for _, file := range files {
			if err := indexFile(ctx, file); err != nil && ctx.Err() == nil {
				log.Printf("chorus: _id lookup index in %s: %v", file, err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func indexFile(ctx context.Context, file string) error {
	before, err := os.Stat(file)
	if err != nil {
		return nil // dropped meanwhile
	}
	// mode=rw: never create a database FerretDB has just removed.
	db, err := sql.Open("sqlite", "file:"+file+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	defer func() {
		// Closing the last connection to a WAL database checkpoints and removes "<file>-wal"
		// by name. If FerretDB dropped this database (and maybe created it again) while we
		// had it open, that name may be another database's: leave the handle open instead.
		if after, err := os.Stat(file); err == nil && os.SameFile(before, after) {
			db.Close()
		}
	}()
	rows, err := db.QueryContext(ctx, `SELECT c.table_name FROM _ferretdb_collections c
		WHERE NOT EXISTS (SELECT 1 FROM sqlite_master m WHERE m.type = 'index' AND m.name = c.table_name || '_chorus_id')`)
	if err != nil {
		return nil // not a FerretDB database yet (being created)
	}
	var tables []string
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, table)
	}
	rows.Close()
	for _, table := range tables {
		stmt := `CREATE INDEX IF NOT EXISTS "` + table + `_chorus_id" ON "` + table + `" (_ferretdb_sjson->'$._id')`
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			log.Printf("chorus: %s: %v", stmt, err) // dropped meanwhile, most likely
		}
	}
	return nil
}
