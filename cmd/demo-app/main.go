// Command demo-app is the tiny service the scaler demo scales: every GET /
// burns a fixed amount of CPU, so that its CPU use, and with it the
// replica count the scaler decides, follows the request rate. It announces
// itself in the registry with the path of its Prometheus metrics, which is
// how the scaler finds what to scrape, and leaves the registry before it
// drains on SIGTERM, which is how the process driver stops it.
//
// Its settings are environment variables:
//
//	PORT                     port to listen on, every interface (0: any free port)
//	STEWARD_INSTANCE_ID      instance ID (default demo-<hostname>-<pid>)
//	STEWARD_REGISTRY_URL     registry replicas to announce in, comma-separated (default http://127.0.0.1:8082; empty: none)
//	STEWARD_DEMO_SERVICE     service to register under (default demo)
//	STEWARD_DEMO_WORK        CPU time one GET / burns (default 20ms; ?work= overrides, up to 1s)
//	STEWARD_DEMO_ERROR_RATE  share of GET / answered 500, 0 to 1, spread evenly (default 0: a bad release, for canary demos)
//	STEWARD_VERSION          version to register and answer with (the process driver sets it)
//	STEWARD_ADVERTISE_ADDR   host:port to register (default: derived from the listener)
//	STEWARD_SHUTDOWN_TIMEOUT drain bound after leaving the registry (default 5s)
//	STEWARD_LOG_FORMAT       auto, json or text; STEWARD_LOG_LEVEL, e.g. debug
package main

import "github.com/stewardhq/steward/platform/launch"

func main() { launch.Main("demo-app", run) }
