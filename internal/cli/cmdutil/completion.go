package cmdutil

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/iothub"
)

// completionTimeout bounds a completion that asks the hub (device or job
// ids): a shell waiting on Tab must not hang on a slow or unreachable hub.
const completionTimeout = 3 * time.Second

// completionLimit is the most ids one completion reads from the hub.
const completionLimit = 1000

// CredentialsConfigured reports whether the global options or the
// environment name a hub credential, so completion only calls the hub when
// the user has set one up (it never triggers an interactive sign-in).
func (f *Factory) CredentialsConfigured() bool {
	g := f.Global
	if g.ConnectionString != "" || g.ConnectionStringFile != "" || g.Hub != "" {
		return true
	}
	if g.Applied != nil && g.Applied.Profile.ConnectionString != "" {
		return true
	}
	if f.LookupEnv == nil {
		return false
	}
	for _, k := range []string{"IOTHUB_CONNECTION_STRING", EnvHub} {
		if v, ok := f.LookupEnv(k); ok && strings.TrimSpace(v) != "" {
			return true
		}
	}
	return false
}

// CompleteDeviceIDs completes a --device value with the ids of the hub's
// devices that start with what was typed. It is silent (no candidates, no
// message) when no credential is configured or the hub does not answer
// within completionTimeout.
func CompleteDeviceIDs(f *Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		c, ctx, cancel := f.completionClient(cmd)
		if c == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		pager := c.NewQueryPager("SELECT deviceId FROM devices", &iothub.QueryOptions{PageSize: completionLimit})
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var ids []string
		for _, item := range page.Items {
			var d struct {
				DeviceID string `json:"deviceId"`
			}
			if json.Unmarshal(item, &d) == nil && d.DeviceID != "" && strings.HasPrefix(d.DeviceID, toComplete) {
				ids = append(ids, d.DeviceID)
			}
		}
		sort.Strings(ids)
		return ids, cobra.ShellCompDirectiveNoFileComp
	}
}

// CompleteJobIDs completes the JOB-ID argument of jobs show, cancel, wait
// and results with the hub's jobs, silently like CompleteDeviceIDs.
func CompleteJobIDs(f *Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, ctx, cancel := f.completionClient(cmd)
		if c == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		page, err := c.NewJobsPager(&iothub.JobsQueryOptions{PageSize: 100}).NextPage(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var ids []string
		for _, j := range page.Jobs {
			if strings.HasPrefix(j.JobID, toComplete) {
				ids = append(ids, j.JobID+"\t"+string(j.Status))
			}
		}
		return ids, cobra.ShellCompDirectiveNoFileComp
	}
}

// ApplyProfileForCompletion applies the profile as a command run would:
// cobra's completion command does not run the root's PersistentPreRunE.
// Errors are ignored: completion stays silent.
func (f *Factory) ApplyProfileForCompletion(cmd *cobra.Command) {
	if f.Global.Applied == nil {
		_ = f.ApplyProfile(cmd.Flags())
	}
}

// completionClient returns the hub client and a context bounded by
// completionTimeout for a completion, applying the profile first; a nil
// client (completion stays silent) when no credential is configured or the
// client cannot be built.
func (f *Factory) completionClient(cmd *cobra.Command) (*iothub.Client, context.Context, context.CancelFunc) {
	f.ApplyProfileForCompletion(cmd)
	if !f.CredentialsConfigured() {
		return nil, nil, nil
	}
	c, _, err := f.HubClient()
	if err != nil {
		return nil, nil, nil
	}
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, completionTimeout)
	return c, ctx, cancel
}

// AddDynamicCompletions wires the hub-backed completions into the tree:
// job ids for the jobs subcommands that take one.
func AddDynamicCompletions(root *cobra.Command, f *Factory) {
	for _, c := range root.Commands() {
		if c.Name() != "jobs" {
			continue
		}
		for _, sub := range c.Commands() {
			switch sub.Name() {
			case "show", "cancel", "wait", "results":
				if sub.ValidArgsFunction == nil {
					sub.ValidArgsFunction = CompleteJobIDs(f)
				}
			}
		}
	}
}
