// Command steward-election runs one replica of the leader-election service.
package main

import (
	"github.com/stewardhq/steward/platform/launch"
	"github.com/stewardhq/steward/services/election"
)

func main() { launch.Main("steward-election", election.Run) }
