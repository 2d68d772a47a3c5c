// Command steward-registry runs one replica of the service registry.
package main

import (
	"github.com/stewardhq/steward/platform/launch"
	"github.com/stewardhq/steward/services/registry"
)

func main() { launch.Main("steward-registry", registry.Run) }
