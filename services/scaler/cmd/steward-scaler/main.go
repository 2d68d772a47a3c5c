// Command steward-scaler runs one replica of the autoscaler service.
package main

import (
	"github.com/stewardhq/steward/platform/launch"
	"github.com/stewardhq/steward/services/scaler"
)

func main() { launch.Main("steward-scaler", scaler.Run) }
