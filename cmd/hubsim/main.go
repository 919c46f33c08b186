// Command hubsim is a local Azure IoT Hub with a simulated device fleet: this
// package is its command line (flags -> hubsim.Config, `hubsim device`,
// `hubsim wait`, `hubsim token`, `hubsim bench`); internal/hubsim is the
// server it runs.
package main

import "os"

func main() {
	os.Exit(Main(os.Args[1:]))
}
