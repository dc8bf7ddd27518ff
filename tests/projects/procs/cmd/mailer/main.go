// A singleton consumer for goship's [processes] tests (overlap = false): it records its
// release and PID in $HOME/mailer.pid while it runs, and appends "start"/"stop" lines with
// its release to $HOME/mailer.log, so a test sees that two never ran at once.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

var version = "dev"

func logLine(home, what string) {
	f, err := os.OpenFile(filepath.Join(home, "mailer.log"),
		os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s release=%s pid=%d\n", what, os.Getenv("GOSHIP_RELEASE"), os.Getpid())
}

func main() {
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	logLine(home, "start")
	fmt.Println("mailer: started", version)
	<-stop
	logLine(home, "stop")
	fmt.Println("mailer: stopping")
}
