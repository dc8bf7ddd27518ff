// hello-gin is the example service goship builds, ships and measures.
//
// Test-only knobs (environment variables, for goship's tests and benchmarks;
// never set them in production):
//
//	HELLO_TEST_FAIL_HEALTH=1      /health answers 503
//	HELLO_TEST_CRASH_AFTER=3s     the process exits with status 2 after that long
//	HELLO_TEST_ERROR_PERCENT=20   that share of non-health requests answer 500
//	HELLO_TEST_LATENCY=50ms       every request waits that long first
//	HELLO_TEST_START_DELAY=2s     the listener opens only after that long
package main

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
)

// Stamped at build time with -X main.version=... (see goship.toml).
var (
	version   = "dev"
	commit    = "none"
	buildTime = "unknown"
)

func envDuration(logger *slog.Logger, name string, def time.Duration) time.Duration {
	raw := os.Getenv(name)
	if raw == "" {
		return def
	}
	d, err := time.ParseDuration(raw)
	if err != nil {
		logger.Error("bad duration, using default", "var", name, "value", raw, "default", def.String())
		return def
	}
	return d
}

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	slog.SetDefault(logger)

	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	drain := envDuration(logger, "DRAIN_TIMEOUT", 10*time.Second)
	failHealth := os.Getenv("HELLO_TEST_FAIL_HEALTH") == "1"
	errorPercent, _ := strconv.Atoi(os.Getenv("HELLO_TEST_ERROR_PERCENT"))
	latency := envDuration(logger, "HELLO_TEST_LATENCY", 0)
	crashAfter := envDuration(logger, "HELLO_TEST_CRASH_AFTER", 0)
	startDelay := envDuration(logger, "HELLO_TEST_START_DELAY", 0)

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery(), jsonLog(logger))
	// Once told to stop, every answer says "Connection: close": a client on a keep-alive
	// connection (one reaching the pod straight through a Kubernetes Service, no proxy in
	// between) reconnects, to another pod, instead of racing the close of an idle one.
	var draining atomic.Bool
	r.Use(func(c *gin.Context) {
		if draining.Load() {
			c.Header("Connection", "close")
		}
		c.Next()
	})
	r.Use(func(c *gin.Context) {
		if latency > 0 {
			time.Sleep(latency)
		}
		if errorPercent > 0 && c.Request.URL.Path != "/health" && rand.IntN(100) < errorPercent {
			c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "injected failure"})
			return
		}
		c.Next()
	})
	// Templates and static files are read relative to the working directory,
	// as most Gin services do: the release directory must be the cwd.
	r.LoadHTMLGlob("templates/*")
	r.Static("/static", "./static")

	r.GET("/health", func(c *gin.Context) {
		if failHealth {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "failing"})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	})
	r.GET("/version", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"version": version, "commit": commit, "build_time": buildTime})
	})
	r.GET("/api/items", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"items": []gin.H{
			{"id": 1, "name": "gopher"},
			{"id": 2, "name": "gin"},
		}, "version": version})
	})
	r.GET("/", func(c *gin.Context) {
		c.HTML(http.StatusOK, "index.tmpl", gin.H{"version": version, "host": hostname()})
	})

	srv := &http.Server{Addr: ":" + port, Handler: r, ReadHeaderTimeout: 10 * time.Second}

	if crashAfter > 0 {
		go func() {
			time.Sleep(crashAfter)
			logger.Error("crashing on purpose (HELLO_TEST_CRASH_AFTER)")
			os.Exit(2)
		}()
	}
	if startDelay > 0 {
		time.Sleep(startDelay)
	}

	go func() {
		logger.Info("listening", "port", port, "version", version)
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("listen failed", "err", err.Error())
			os.Exit(1)
		}
	}()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	sig := <-stop
	logger.Info("shutting down", "signal", sig.String(), "drain", drain.String())
	draining.Store(true)
	time.Sleep(min(time.Second, drain/2)) // busy keep-alive connections get their close
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		logger.Error("drain incomplete", "err", err.Error())
		os.Exit(1)
	}
	logger.Info("stopped")
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

// jsonLog writes one JSON line per request, the shape log shippers expect.
func jsonLog(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		logger.Info("request",
			"method", c.Request.Method,
			"path", c.Request.URL.Path,
			"status", c.Writer.Status(),
			"duration_ms", float64(time.Since(start).Microseconds())/1000,
			"client_ip", c.ClientIP(),
		)
	}
}
