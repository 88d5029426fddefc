// Command chorus-ferretdb runs FerretDB 1.x embedded, with the SQLite backend.
//
// We embed FerretDB instead of `go install`ing its command because the
// installed binary panics at start (missing version.txt, FerretDB issue 2982).
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
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
	log.Printf("FerretDB listening on %s, data in %s", *listen, url)
	if err := f.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
