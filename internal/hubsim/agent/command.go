package agent

import (
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
)

// EnvConnectionString is the environment variable read when
// --connection-string is not given.
const EnvConnectionString = "IOTHUB_DEVICE_CONNECTION_STRING"

// NewCommand returns the `device` command: it runs an Agent until its
// context ends. Events go to stdout as JSON lines, a readable log to
// stderr. Input problems are returned as *UsageError.
func NewCommand(stdout, stderr io.Writer) *cobra.Command {
	cfg := Config{}
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Run a device agent that answers reboot, factoryReset and firmwareUpdate",
		Long: `device connects to an IoT hub — hubsim or a real Azure IoT Hub — as one device (or
module) over MQTT over TLS, from a device connection string, and plays the device
side of device management:

  reboot          answers 200, reports iothubDM.reboot.startedRebootTime, goes
                  offline for --reboot-downtime, comes back and reports lastReboot
  factoryReset    answers 200, reports iothubDM.factoryReset.status "resetting",
                  goes offline for --reset-downtime, then reports "resetComplete"
                  and lastFactoryReset
  firmwareUpdate  payload {"fwPackageUri":"https://..."}: answers 200 (400 for a
                  URI that is not https), then walks iothubDM.firmwareUpdate.status
                  through waiting, downloading, downloadComplete, applying and
                  applyComplete, --firmware-step apart
  anything else   answers 404

The actions are simulated: nothing on this machine is rebooted, reset or
downloaded. The connection string comes from --connection-string or, better
(flags show in process lists), from $` + EnvConnectionString + `. With
GatewayHostName set the agent connects there (hubsim's ready line does this
for its MQTT port); otherwise to HostName on port 8883 (443 with --websocket).

An X.509 device connects with --cert and --key (its PEM client certificate
and private key) and a connection string with x509=true, or with HostName
and DeviceId only: the certificate goes in the TLS handshake, no password.

stdout gets one JSON object per line for each event (connected, method,
reported, desired, offline, disconnected, error); stderr a readable log.
SIGINT or SIGTERM disconnect and exit 0.`,
		Example: `  $ export IOTHUB_DEVICE_CONNECTION_STRING='HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=...'
  $ hubsim device
  $ hubsim device --ca-file ./hub/ca.pem --reboot-downtime 10s --firmware-step 1s
  $ hubsim device --connection-string 'HostName=myhub.azure-devices.net;DeviceId=cam-1;x509=true' --cert cam-1.pem --key cam-1-key.pem`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unexpected argument %q (device takes flags only; see --help)", args[0])
			}
			return nil
		},
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("connection-string") {
				cfg.ConnectionString = os.Getenv(EnvConnectionString)
			}
			// An explicit 0 means "immediately" (Config reads 0 as "default").
			for _, f := range []struct {
				name string
				v    *time.Duration
			}{{"reboot-downtime", &cfg.RebootDowntime}, {"reset-downtime", &cfg.ResetDowntime}, {"firmware-step", &cfg.FirmwareStep}} {
				if cmd.Flags().Changed(f.name) && *f.v == 0 {
					*f.v = time.Nanosecond
				}
			}
			cfg.Events, cfg.Log = stdout, stderr
			a, err := New(cfg)
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&cfg.ConnectionString, "connection-string", "", "device or module connection `CS` (default $"+EnvConnectionString+")")
	fl.StringVar(&cfg.CAFile, "ca-file", "", "PEM `FILE` of CA certificates to trust besides the system's (e.g. hubsim's ca.pem)")
	fl.StringVar(&cfg.CertFile, "cert", "", "PEM `FILE` of the device's X.509 client certificate (then any intermediates), for an X.509 device; needs --key")
	fl.StringVar(&cfg.KeyFile, "key", "", "PEM `FILE` of the private key of --cert")
	fl.BoolVar(&cfg.WebSocket, "websocket", false, "MQTT over WebSocket (wss://HOST/$iothub/websocket) instead of MQTT over TLS")
	fl.DurationVar(&cfg.RebootDowntime, "reboot-downtime", DefaultRebootDowntime, "how long a reboot keeps the device offline")
	fl.DurationVar(&cfg.ResetDowntime, "reset-downtime", DefaultResetDowntime, "how long a factory reset keeps the device offline")
	fl.DurationVar(&cfg.FirmwareStep, "firmware-step", DefaultFirmwareStep, "time between two firmware-update states")
	fl.DurationVar(&cfg.TokenTTL, "token-ttl", DefaultTokenTTL, "lifetime of the SAS tokens the agent signs (it reconnects before expiry)")
	return cmd
}
