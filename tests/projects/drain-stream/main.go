// streams: long-lived connections, an SSE stream and a websocket, each naming the release
// every 200 ms, so a client sees which release serves it and whether its stream was cut.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
)

var version = "dev"

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func events(c *gin.Context) {
	c.Header("Content-Type", "text/event-stream")
	c.Header("Cache-Control", "no-cache")
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		if _, err := fmt.Fprintf(c.Writer, "data: %s %d\n\n", version, n); err != nil {
			return
		}
		c.Writer.Flush()
		select {
		case <-c.Request.Context().Done():
			return
		case <-tick.C:
		}
	}
}

func ws(c *gin.Context) {
	conn, err := upgrader.Upgrade(c.Writer, c.Request, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	go func() { // reads keep control frames answered; a close ends the writer below
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				conn.Close()
				return
			}
		}
	}()
	for n := 0; ; n++ {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("%s %d", version, n))); err != nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func main() {
	r := gin.New()
	r.GET("/health", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	r.GET("/version", func(c *gin.Context) { c.String(http.StatusOK, version) })
	r.GET("/events", events)
	r.GET("/ws", ws)

	srv := &http.Server{Addr: "127.0.0.1:" + os.Getenv("PORT"), Handler: r}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	quit := make(chan os.Signal, 1)
	signal.Notify(quit, syscall.SIGTERM, os.Interrupt)
	<-quit
	// Shutdown does not wait for hijacked (websocket) connections, and an SSE stream lasts
	// until this timeout: the process exit ends both.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
