// pinger: takes its port from --port and stops on Ctrl-C (os.Interrupt) only: SIGTERM,
// which systemd and supervisord send, kills it without draining.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/gin-gonic/gin"
)

var version = "dev"

func main() {
	port := flag.Int("port", 8070, "port to listen on")
	flag.Parse()

	r := gin.New()
	r.Handle(http.MethodGet, "/health", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	r.GET("/ping", func(c *gin.Context) { c.String(http.StatusOK, "pong %s", version) })

	srv := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", *port), Handler: r}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	quit := make(chan os.Signal, 1)
	signal.Notify(quit, os.Interrupt)
	<-quit
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
