// notes-yaml: a small notes service that reads its settings, port included, from
// config.yaml in the working directory and appends every note to data/notes.log.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"example.com/notes-yaml/internal/config"
)

var version = "dev"

func main() {
	cfg, err := config.Load("config.yaml")
	if err != nil {
		log.Fatalf("config: %v", err)
	}
	if err := os.MkdirAll("data", 0o755); err != nil {
		log.Fatalf("data dir: %v", err)
	}
	notes := filepath.Join("data", "notes.log")

	r := gin.New()
	r.Use(gin.Recovery())
	r.GET("/healthz", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "ok", "version": version})
	})
	r.POST("/notes", func(c *gin.Context) {
		body, _ := c.GetRawData()
		f, err := os.OpenFile(notes, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			c.String(http.StatusInternalServerError, err.Error())
			return
		}
		defer f.Close()
		fmt.Fprintf(f, "%s\n", body)
		c.Status(http.StatusCreated)
	})
	r.GET("/notes", func(c *gin.Context) {
		c.File(notes)
	})

	srv := &http.Server{Addr: fmt.Sprintf("%s:%d", cfg.Server.Host, cfg.Server.Port), Handler: r}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
}
