// A scheduled job for goship's [processes] tests: appends one line naming its release to
// nightly.log in its home (the app's shared data) and exits.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

var version = "dev"

func main() {
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	f, err := os.OpenFile(filepath.Join(home, "nightly.log"),
		os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Println("nightly:", err)
		os.Exit(1)
	}
	defer f.Close()
	fmt.Fprintf(f, "release=%s version=%s at=%s\n", os.Getenv("GOSHIP_RELEASE"), version,
		time.Now().UTC().Format(time.RFC3339))
	fmt.Println("nightly: done", version)
}
