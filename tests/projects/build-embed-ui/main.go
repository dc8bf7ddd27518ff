// A web UI built by a front-end step into a git-ignored build/ and embedded.
// `embed-ui cat` prints the embedded page.
package main

import (
	"embed"
	"fmt"
	"os"
)

//go:embed build/*
var ui embed.FS

func main() {
	page, err := ui.ReadFile("build/index.html")
	if err != nil || len(os.Args) != 2 || os.Args[1] != "cat" {
		fmt.Fprintln(os.Stderr, "usage: embed-ui cat", err)
		os.Exit(2)
	}
	os.Stdout.Write(page)
}
