// admin: a CLI in the cobra style, written with the standard flag package. The service
// runs as `admin server -c config/settings.yml --addr :8000`; `admin version` prints the
// build.
package main

import (
	"fmt"
	"os"
)

var (
	Version = "dev"
	BuiltAt = "unknown"
	// Mode is "debug" unless the build sets it (the Makefile sets prod).
	Mode = "debug"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: admin server|version [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "server":
		os.Exit(serverCmd(os.Args[2:]))
	case "version":
		fmt.Println(Version, BuiltAt, Mode)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}
