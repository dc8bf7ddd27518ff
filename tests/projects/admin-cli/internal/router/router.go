// Package router declares the API groups; each area registers its routes in its own file.
package router

import "github.com/gin-gonic/gin"

func Register(r *gin.Engine, name, mode string) {
	v1 := r.Group("/api/v1")
	registerHealth(v1, mode)
	registerUsers(v1, name)
}
