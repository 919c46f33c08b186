package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
)

// helpTopics are pages shown by `dmctl help <topic>` (gh's help_topic.go).
var helpTopics = []struct {
	name, short, long string
}{
	{
		name:  "exit-codes",
		short: "Exit codes and what they mean to a script",
		long: cmdutil.Heredoc(`
			dmctl exits with one of these codes:

			  0    every target succeeded; also a run with no targets at all (an
			       empty devices file, a query that matches no device), with or
			       without --via job: dmctl says so on stderr and sends nothing
			  1    an unexpected error (a bug, an I/O failure)
			  2    usage or input error: a flag, argument, payload, id, targets file
			       line, journal, profile or connection string is wrong, a flag that
			       takes a value got an empty one or was given twice, an environment
			       variable that stands for a flag is set but empty, the hub refused
			       the input (HTTP 400: a query or job condition, with the hub's
			       message), or the confirmation prompt was answered no; nothing was
			       sent to a device
			  3    authentication or authorization refused: the credential could not
			       get a token, or the hub refused every target with 401/403 (or
			       refused the one request of jobs and twin commands)
			  4    at least one target did not succeed: the device answered with a
			       status outside --ok-status, was offline, timed out, was throttled,
			       was not found, or the call failed; or, with --wait/--wait-until,
			       the device then reported failure (waitFailed) or did not report
			       its outcome within --wait-timeout (waitTimeout); or, with dmctl
			       apply, its twin had changed since the plan (drifted). Also: what a
			       command names was not found (jobs show|wait|results|cancel of an
			       unknown job, twin show of an unknown device or module, or a --path
			       the twin does not have)
			  5    the run was stopped by its failure threshold (--max-failures or
			       an --abort-if criterion) or by a --gate between waves;
			       the targets it did not start are reported skipped
			  130  interrupted: Ctrl-C or SIGTERM, or stdout closed by its reader
			       (dmctl ... | head); calls in flight got --grace to finish, every
			       target not started is reported skipped, the summary is on stderr,
			       and with --journal, dmctl invoke --resume FILE continues the run.
			       Also Ctrl-C at the confirmation prompt (nothing was sent)

			A device's answer is data: HTTP 200 from the hub with {"status":500} is a
			device that failed, so dmctl exits 4. --ok-status (default: any 2xx)
			decides which device statuses count as success.

			Example:

			  $ dmctl invoke reboot --device thermostat-17 -o json > result.json
			  $ case $? in 0) echo rebooted;; 4) echo "device did not reboot";; *) exit 1;; esac
		`),
	},
	{
		name:  "environment",
		short: "Environment variables that dmctl reads",
		long: cmdutil.Heredoc(`
			A variable that is set but empty (or only spaces) is bad input (exit 2),
			like an empty flag value, wherever dmctl would read it: it never falls back
			to the next source (a profile, the default).

			Hub and credentials:

			  IOTHUB_CONNECTION_STRING  a service connection string (HostName=...;
			                            SharedAccessKeyName=...;SharedAccessKey=...).
			                            Used for --auth sas; --connection-string-file and
			                            --connection-string take precedence over it.
			                            Prefer this or a file to putting the key in argv.
			  DMCTL_HUB                 default for --hub (the hub's host name)
			  DMCTL_AUTH                default for --auth: sas, default, azure-cli,
			                            environment, managed-identity, workload-identity
			  DMCTL_PROFILE             the saved profile to use when --profile is not
			                            given (dmctl config)
			  DMCTL_CONFIG_DIR          where dmctl config keeps config.yaml (default:
			                            the user's config directory + /dmctl)

			Microsoft Entra ID (read by the Azure Identity library):

			  AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET
			  AZURE_CLIENT_CERTIFICATE_PATH, AZURE_CLIENT_CERTIFICATE_PASSWORD
			                            a service principal (--auth environment, default)
			  AZURE_CLIENT_ID           the user-assigned managed identity to use
			                            (--auth managed-identity)
			  AZURE_FEDERATED_TOKEN_FILE
			                            workload identity (--auth workload-identity)
			  AZURE_AUTHORITY_HOST      the Entra authority for a sovereign or private
			                            cloud; for a non-public authority dmctl turns
			                            off instance discovery
			  AZURE_TOKEN_CREDENTIALS   limits which credentials --auth default tries

			Output:

			  DMCTL_OUTPUT              default for -o/--output: table, wide, json,
			                            jsonl, name
			  NO_COLOR                  when set, never print colour

			Network:

			  HTTPS_PROXY, NO_PROXY     proxy for hub and token requests
			  SSL_CERT_FILE, SSL_CERT_DIR
			                            extra trusted CA certificates (as does
			                            --ca-file)

			Runtime:

			  GOGC, GOMEMLIMIT          Go's garbage collector settings; when unset,
			                            dmctl uses GOGC 400 and a soft memory limit
			                            of 32 MiB + 128 KiB per call that may be in
			                            flight, which follows --concurrency auto
		`),
	},
}

func newHelpTopic(name, short, long string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   name,
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
	}
	cmd.SetHelpFunc(func(c *cobra.Command, _ []string) {
		_, _ = fmt.Fprint(c.OutOrStdout(), c.Long)
	})
	cmd.SetUsageFunc(func(c *cobra.Command) error {
		_, _ = fmt.Fprintf(c.ErrOrStderr(), "Usage: dmctl help %s\n", c.Name())
		return nil
	})
	return cmd
}
