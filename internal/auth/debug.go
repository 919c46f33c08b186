package auth

import (
	"fmt"
	"io"

	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/dmctl/dmctl/internal/connstr"
)

// LogTo sends azidentity's authentication events (which credential was
// tried, why one failed) to w, secrets redacted, for --debug. nil stops it.
// azcore's log listener is process-wide, so only the CLI's root calls this.
func LogTo(w io.Writer) {
	if w == nil {
		azlog.SetListener(nil)
		return
	}
	azlog.SetEvents(azidentity.EventAuthentication)
	azlog.SetListener(func(e azlog.Event, msg string) {
		_, _ = fmt.Fprintf(w, "[%s] %s\n", e, connstr.Redact(msg))
	})
}
