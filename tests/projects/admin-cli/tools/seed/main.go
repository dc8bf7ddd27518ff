// seed is a separate tool of the same module: its routes are not the service's.
package main

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

func main() {
	r := gin.New()
	r.GET("/health", func(c *gin.Context) { c.Status(http.StatusOK) })
	_ = r.Run("127.0.0.1:9999")
}
