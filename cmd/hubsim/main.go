// Command hubsim is a local Azure IoT Hub with a simulated device fleet. See
// internal/hubsim for what it serves and `hubsim --help` for its flags.
package main

import (
	"os"

	"github.com/dmctl/dmctl/internal/hubsim"
)

func main() {
	os.Exit(hubsim.Main(os.Args[1:]))
}
