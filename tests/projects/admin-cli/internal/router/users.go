package router

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

func registerUsers(g *gin.RouterGroup, name string) {
	users := g.Group("/users")
	users.GET("", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"service": name, "users": []string{"ada", "linus"}})
	})
}
