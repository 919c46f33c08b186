package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/hubsim/hubenv"
	"github.com/dmctl/dmctl/internal/sas"
)

// newTokenCmd is `hubsim token --dir DIR --device ID`: a device or module
// SAS token for clients that take a token rather than a connection string
// (mosquitto, curl), as `az iot hub generate-sas-token` makes one: the key
// is read through the running hub's registry API (GET /devices/{id}) with
// the registryRead policy of DIR/hubsim.env, and the token is signed here.
func newTokenCmd(stdout, _ io.Writer) *cobra.Command {
	var dir, device, module string
	ttl := time.Hour
	cmd := &cobra.Command{
		Use:   "token --dir DIR --device ID [--module ID] [--ttl 1h]",
		Short: "Print a device or module SAS token of the hubsim serving DIR",
		Long: `token prints a SAS token for a device (or a module with --module) of the
running hubsim started with --dir DIR: "SharedAccessSignature sr=...&sig=...&se=...",
signed with the identity's primary key, valid for --ttl. It is the MQTT
password of a client that takes a token instead of a connection string, such
as mosquitto_pub and mosquitto_sub. The key comes from the hub's registry API
(GET /devices/{id}), so identities created at run time work too. The token is
a secret: it goes to stdout only.`,
		Example: `  $ hubsim token --dir ./hub --device thermostat-1
  $ hubsim token --dir ./hub --device gw-1 --module edgeAgent --ttl 10m`,
		Args:          noArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("dir") || !cmd.Flags().Changed("device") {
				return usagef("--dir and --device are required")
			}
			if ttl <= 0 {
				return usagef("--ttl %s: must be more than 0", ttl)
			}
			tok, err := deviceToken(cmd.Context(), dir, device, module, ttl)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, tok)
			return err
		},
	}
	cmd.SetFlagErrorFunc(flagError)
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&dir, "dir", "", "the `DIR` the running hubsim was started with (--dir)")
	fl.StringVar(&device, "device", "", "the device `ID`")
	fl.StringVar(&module, "module", "", "a module `ID` of the device: a module token")
	fl.DurationVar(&ttl, "ttl", ttl, "how long the token is valid")
	return cmd
}

// deviceToken reads the identity's primary key from the hub's registry and
// signs a token for it.
func deviceToken(ctx context.Context, dir, device, module string, ttl time.Duration) (string, error) {
	env, err := hubenv.Load(filepath.Join(dir, hubenv.File))
	if err != nil {
		return "", err
	}
	envPath, vars := env.Path, env.Vars
	cs, err := connstr.ParseService(vars["HUBSIM_REGISTRY_READ_CONNECTION_STRING"])
	if err != nil {
		return "", fmt.Errorf("HUBSIM_REGISTRY_READ_CONNECTION_STRING in %s: %v", envPath, err)
	}
	policyKey, err := sas.DecodeKey(cs.SharedAccessKey)
	if err != nil {
		return "", fmt.Errorf("HUBSIM_REGISTRY_READ_CONNECTION_STRING in %s: the key is not base64", envPath)
	}
	resource := "devices/" + url.PathEscape(device)
	if module != "" {
		resource += "/modules/" + url.PathEscape(module)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+vars["HUBSIM_HTTPS_ADDR"]+"/"+resource+"?api-version=2021-04-12", nil)
	if err != nil {
		return "", fmt.Errorf("HUBSIM_HTTPS_ADDR in %s: %v", envPath, err)
	}
	req.Host = cs.HostName
	req.Header.Set("Authorization", sas.NewToken(cs.HostName, cs.SharedAccessKeyName, policyKey, time.Now().Add(5*time.Minute)))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: env.TLS}}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("read %s from the hub at %s: %v", resource, vars["HUBSIM_HTTPS_ADDR"], err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("read %s from the hub: %s (%s)", resource, resp.Status, resp.Header.Get("iothub-errorcode"))
	}
	var doc struct {
		Authentication struct {
			Type         string `json:"type"`
			SymmetricKey struct {
				PrimaryKey string `json:"primaryKey"`
			} `json:"symmetricKey"`
		} `json:"authentication"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("read %s from the hub: not a Device object: %v", resource, err)
	}
	key, err := sas.DecodeKey(doc.Authentication.SymmetricKey.PrimaryKey)
	if err != nil || len(key) == 0 {
		return "", fmt.Errorf("%s has no symmetric key (authentication type %q): it does not use SAS tokens", resource, doc.Authentication.Type)
	}
	return sas.NewToken(cs.HostName+"/"+resource, "", key, time.Now().Add(ttl)), nil
}
