package api_test

import (
	"bytes"
	"testing"

	"github.com/stewardhq/steward/gateway/api"
	"github.com/stewardhq/steward/gateway/api/merge"
)

// TestGenerated fails when openapi.json is not what go generate writes from
// gateway.json and the services' documents as they are now.
func TestGenerated(t *testing.T) {
	want, err := merge.Files("gateway.json", "../../services")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(api.Document, want) {
		t.Fatal("openapi.json is out of date: run go generate ./gateway/api")
	}
}
