// Command steward-config runs one replica of the configuration service.
package main

import (
	"github.com/stewardhq/steward/platform/launch"
	"github.com/stewardhq/steward/services/config"
)

func main() { launch.Main("steward-config", config.Run) }
