// Command go-device is a device written on the independent Go device SDK
// github.com/amenzhinsky/iothub, unmodified: it connects to IoT Hub (or
// hubsim) with DEVICE_CONNECTION_STRING, answers the direct method reboot
// (200, then it reports iothubDM.reboot.lastReboot, as a device that has
// rebooted does) and echo, and runs until SIGINT or SIGTERM.
//
// The SDK dials HostName:8883. Against hubsim set MQTT_ADDR to its MQTT
// address ($HUBSIM_MQTT_ADDR from hubsim.env); the hub's CA is trusted
// through SSL_CERT_FILE, which Go reads on Linux.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/amenzhinsky/iothub/iotdevice"
	iotmqtt "github.com/amenzhinsky/iothub/iotdevice/transport/mqtt"
	mqttpaho "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "go-device:", err)
		os.Exit(1)
	}
}

func run() error {
	cs := os.Getenv("DEVICE_CONNECTION_STRING")
	if cs == "" {
		return fmt.Errorf("DEVICE_CONNECTION_STRING is empty: give the device's connection string")
	}
	// The SDK does not know GatewayHostName (hubsim's ready line adds it
	// for SDKs that do): leave it out.
	var parts []string
	for _, p := range strings.Split(cs, ";") {
		if !strings.HasPrefix(p, "GatewayHostName=") {
			parts = append(parts, p)
		}
	}
	var opts []iotmqtt.TransportOption
	if addr := os.Getenv("MQTT_ADDR"); addr != "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("MQTT_ADDR %q: %v", addr, err)
		}
		opts = append(opts, iotmqtt.WithClientOptionsConfig(func(o *mqttpaho.ClientOptions) {
			o.Servers = nil
			o.AddBroker("tls://" + addr)
			o.SetTLSConfig(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12})
		}))
	}
	c, err := iotdevice.NewFromConnectionString(iotmqtt.New(opts...), strings.Join(parts, ";"))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.Connect(cctx); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = c.Close() }()
	rebooted := make(chan struct{}, 1)
	if err := c.RegisterMethod(cctx, "reboot", func(map[string]interface{}) (int, map[string]interface{}, error) {
		select {
		case rebooted <- struct{}{}:
		default:
		}
		return 200, map[string]interface{}{"rebooting": true}, nil
	}); err != nil {
		return fmt.Errorf("register reboot: %w", err)
	}
	if err := c.RegisterMethod(cctx, "echo", func(p map[string]interface{}) (int, map[string]interface{}, error) {
		return 200, p, nil
	}); err != nil {
		return fmt.Errorf("register echo: %w", err)
	}
	out := log.New(os.Stdout, "go-device: ", 0) //nolint:forbidigo // a program of its own, not a dmctl command: stdout is its log
	out.Println("connected as", c.DeviceID())
	for {
		select {
		case <-ctx.Done():
			out.Println("stopped")
			return nil
		case <-rebooted:
			// The answer has gone out; report the reboot as done.
			now := time.Now().UTC().Format(time.RFC3339Nano)
			state := iotdevice.TwinState{"iothubDM": map[string]interface{}{"reboot": map[string]interface{}{"lastReboot": now}}}
			if _, err := c.UpdateTwinState(ctx, state); err != nil {
				return fmt.Errorf("report lastReboot: %w", err)
			}
			out.Println("rebooted at", now)
		}
	}
}
