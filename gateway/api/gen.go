//go:build ignore

// gen writes openapi.json: gateway.json and the services' documents merged.
// Run by go generate in gateway/api.
package main

import (
	"log"
	"os"

	"github.com/stewardhq/steward/gateway/api/merge"
)

func main() {
	doc, err := merge.Files("gateway.json", "../../services")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("openapi.json", doc, 0o644); err != nil {
		log.Fatal(err)
	}
}
