// dashboard: serves a front-end embedded at build time. web/dist is produced by
// `make ui` (build-ui.sh) and git-ignored, so a fresh checkout must build it first.
package main

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
)

//go:embed web/dist/*
var dist embed.FS

var Commit string

func main() {
	ui, err := fs.Sub(dist, "web/dist")
	if err != nil {
		log.Fatal(err)
	}
	r := gin.New()
	r.GET("/readyz", func(c *gin.Context) { c.String(http.StatusOK, "ready %s", Commit) })
	r.StaticFS("/ui", http.FS(ui))
	r.GET("/", func(c *gin.Context) { c.Redirect(http.StatusFound, "/ui/") })

	port := os.Getenv("HTTP_PORT")
	if port == "" {
		port = "8300"
	}
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: r}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	quit := make(chan os.Signal, 1)
	signal.Notify(quit, syscall.SIGINT, syscall.SIGTERM)
	<-quit
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
