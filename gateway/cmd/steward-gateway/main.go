// Command steward-gateway runs the gateway.
package main

import (
	"github.com/stewardhq/steward/gateway"
	"github.com/stewardhq/steward/platform/launch"
)

func main() { launch.Main("steward-gateway", gateway.Run) }
