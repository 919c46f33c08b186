// Command dmctl invokes Azure IoT Hub direct methods on devices and fleets.
package main

import (
	"os"

	"github.com/dmctl/dmctl/internal/cli"
)

func main() {
	os.Exit(cli.Main())
}
