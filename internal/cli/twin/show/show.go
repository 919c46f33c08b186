// Package show is `dmctl twin show`.
package show

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
	"github.com/dmctl/dmctl/internal/retry"
)

// printFlags are twin show's formats: the twin is JSON.
var printFlags = cmdutil.PrintFlags{Formats: []output.Format{output.FormatJSON, output.FormatJSONL}, Default: output.FormatJSON}

// Options are `dmctl twin show`'s inputs.
type Options struct {
	cmdutil.HubDeps
	DeviceID string
	ModuleID string
	// Path picks one member, e.g. properties.reported.iothubDM; nil: the
	// whole twin.
	Path []string
}

// NewCmdShow returns `dmctl twin show`.
func NewCmdShow(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{HubDeps: cmdutil.NewHubDeps(f)}
	var path string
	cmd := &cobra.Command{
		Use:   "show --device ID [--module ID] [--path PATH]",
		Short: "Print a device or module twin as JSON",
		Long: cmdutil.Heredoc(`
			Print a device twin (or, with --module, a module twin) as the hub returns
			it: JSON, indented with -o json (the default), on one line with -o jsonl.
			--path picks one member with a dotted path such as
			properties.reported.iothubDM.reboot.lastReboot (an array element is a
			number: tags.zones.0); a path the twin does not have is not found (exit 4, as is a device or
			module the hub does not know).
			Strings picked by --path are printed as JSON strings, quotes included, so
			the output is always JSON.
		`),
		Example: cmdutil.Example(`
			$ dmctl twin show --device thermostat-17
			$ dmctl twin show --device thermostat-17 --path properties.reported.iothubDM.firmwareUpdate.status
			$ dmctl twin show --device gw-1 --module telemetry -o jsonl
		`),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return cmdutil.FlagErrorf("twin show takes no arguments (got %q); name the device with --device ID", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			// JSON only, indented by default.
			format, err := printFlags.Format(cmd, f)
			if err != nil {
				return err
			}
			opts.Output = format
			if err := checkTwinShow(opts, path); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return showRun(cmd.Context(), opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.DeviceID, "device", "", "Device `ID` whose twin to show")
	flags.StringVar(&opts.ModuleID, "module", "", "Show this module's twin instead of the device's")
	flags.StringVar(&path, "path", "", "Print only this member, e.g. properties.reported.iothubDM")
	_ = cmd.RegisterFlagCompletionFunc("device", cmdutil.CompleteDeviceIDs(f))
	_ = cmd.RegisterFlagCompletionFunc("module", cobra.NoFileCompletions)
	_ = cmd.RegisterFlagCompletionFunc("path", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"tags", "properties.desired", "properties.reported", "properties.reported.iothubDM", "connectionState"}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func checkTwinShow(opts *Options, path string) error {
	if opts.DeviceID == "" {
		return cmdutil.FlagErrorf("--device is required: name the device whose twin to show")
	}
	if err := iothub.ValidateDeviceID(opts.DeviceID); err != nil {
		return cmdutil.FlagErrorf("--device: %v", err)
	}
	if opts.ModuleID != "" {
		if err := iothub.ValidateModuleID(opts.ModuleID); err != nil {
			return cmdutil.FlagErrorf("--module: %v", err)
		}
	}
	opts.Path = nil
	if path = strings.TrimSpace(path); path != "" {
		for _, seg := range strings.Split(path, ".") {
			if seg == "" {
				return cmdutil.FlagErrorf("--path %q: it has an empty step (write steps separated by single dots, e.g. properties.reported.x)", path)
			}
			opts.Path = append(opts.Path, seg)
		}
	}
	return nil
}

// showRun reads the twin and prints it, or the member --path names.
func showRun(ctx context.Context, opts *Options) error {
	c, cred, err := opts.Client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	_, err = retry.Do(ctx, opts.ReadPolicy(), func(ctx context.Context, _ int) error {
		var e error
		raw, e = c.GetTwin(ctx, opts.DeviceID, opts.ModuleID)
		return e
	})
	target := opts.DeviceID
	if opts.ModuleID != "" {
		target += "/" + opts.ModuleID
	}
	if err != nil {
		return opts.HubFailure(ctx, err, cred, "twin of "+target)
	}
	v, err := decodeJSON(raw)
	if err != nil {
		return fmt.Errorf("twin of %s: %w: %v", target, iothub.ErrUnreadableAnswer, err)
	}
	for i, step := range opts.Path {
		next, ok := member(v, step)
		if !ok {
			return &cmdutil.NotFoundError{Msg: fmt.Sprintf("twin of %s has no %s", target, strings.Join(opts.Path[:i+1], "."))}
		}
		v = next
	}
	return output.WriteJSON(opts.IO.Out, v, opts.Output != output.FormatJSONL)
}

// decodeJSON decodes keeping numbers as written (json.Number).
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// member steps into an object member or an array element.
func member(v any, step string) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		m, ok := x[step]
		return m, ok
	case []any:
		i, err := strconv.Atoi(step)
		if err != nil || i < 0 || i >= len(x) {
			return nil, false
		}
		return x[i], true
	}
	return nil, false
}
