// goship-probe: the container health check for images without a shell or curl (scratch,
// distroless). `goship-probe /health PORT` GETs http://127.0.0.1:$PORT/health (the port
// from the environment variable named by the second argument, 8080 if unset) and exits 0
// on a 2xx answer.
// Written by goship (`goship render dockerfile`); standard library only.
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: goship-probe /health PORT_VARIABLE")
		os.Exit(2)
	}
	port := os.Getenv(os.Args[2])
	if port == "" {
		port = "8080"
	}
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://127.0.0.1:" + port + os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintln(os.Stderr, resp.Status)
		os.Exit(1)
	}
}
