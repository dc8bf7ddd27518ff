// A queue worker shaped like a real one, for goship's [processes] tests: it writes a
// heartbeat naming its release every 200 ms and stops on SIGTERM. A version containing
// "crash" cannot reach its queue and exits after a moment (systemd restarts it).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Stamped at build time with -X main.version=... (the web binary's stamp).
var version = "dev"

func main() {
	if strings.Contains(version, "crash") {
		fmt.Println("worker: cannot reach the queue at redis://queue:6379 (" + version + ")")
		time.Sleep(1500 * time.Millisecond)
		os.Exit(1)
	}
	home := os.Getenv("HEARTBEAT_DIR") // else the home (the app's shared data under systemd)
	if home == "" {
		if h, err := os.UserHomeDir(); err == nil {
			home = h
		} else {
			home = "."
		}
	}
	path := filepath.Join(home, fmt.Sprintf("heartbeat-%s-%s",
		os.Getenv("GOSHIP_PROCESS"), os.Getenv("GOSHIP_INSTANCE")))
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("worker: started", version, os.Getenv("GOSHIP_RELEASE"))
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		line := fmt.Sprintf("release=%s version=%s pid=%d queue=%s\n",
			os.Getenv("GOSHIP_RELEASE"), version, os.Getpid(), os.Getenv("QUEUE"))
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(line), 0o644); err == nil {
			_ = os.Rename(tmp, path)
		}
		select {
		case <-stop:
			fmt.Println("worker: stopping")
			return
		case <-tick.C:
		}
	}
}
