// A service's storage layer reduced to what the build tests need: SQLite through cgo
// (mattn/go-sqlite3). `cgo-sqlite check FILE` opens FILE, writes a row and prints it.
package main

import (
	"database/sql"
	"fmt"
	"os"

	_ "github.com/mattn/go-sqlite3"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != "check" {
		fmt.Fprintln(os.Stderr, "usage: cgo-sqlite check FILE")
		os.Exit(2)
	}
	db, err := sql.Open("sqlite3", os.Args[2])
	if err == nil {
		_, err = db.Exec("CREATE TABLE IF NOT EXISTS notes (body TEXT); INSERT INTO notes VALUES ('hello')")
	}
	var version string
	var rows int
	if err == nil {
		err = db.QueryRow("SELECT sqlite_version(), (SELECT count(*) FROM notes)").Scan(&version, &rows)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	fmt.Printf("sqlite %s rows=%d\n", version, rows)
}
