// visits: counts visits in a SQLite database at data/app.db (relative to the working
// directory), through mattn/go-sqlite3, which needs cgo.
package main

import (
	"context"
	"database/sql"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	_ "github.com/mattn/go-sqlite3"
)

var (
	Version   = "dev"
	GitCommit = "none"
)

func main() {
	if err := os.MkdirAll("data", 0o755); err != nil {
		log.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "data/app.db?_busy_timeout=5000&_journal_mode=WAL")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS visits (id INTEGER PRIMARY KEY, at TEXT)`); err != nil {
		log.Fatal(err)
	}

	r := gin.New()
	r.GET("/health", func(c *gin.Context) {
		if err := db.Ping(); err != nil {
			c.String(http.StatusServiceUnavailable, err.Error())
			return
		}
		c.JSON(http.StatusOK, gin.H{"version": Version, "commit": GitCommit})
	})
	r.POST("/visits", func(c *gin.Context) {
		if _, err := db.Exec(`INSERT INTO visits (at) VALUES (?)`, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			c.String(http.StatusInternalServerError, err.Error())
			return
		}
		c.Status(http.StatusCreated)
	})
	r.GET("/visits", func(c *gin.Context) {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM visits`).Scan(&n); err != nil {
			c.String(http.StatusInternalServerError, err.Error())
			return
		}
		c.JSON(http.StatusOK, gin.H{"count": n})
	})

	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: r}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	_ = db.Close()
}
