package router

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

func registerHealth(g *gin.RouterGroup, mode string) {
	g.Match([]string{http.MethodGet, http.MethodHead}, "/health", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "ok", "mode": mode})
	})
}
