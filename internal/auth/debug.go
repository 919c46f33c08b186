package auth

import (
	"fmt"
	"io"

	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// LogTo sends azcore's request and response events (the hub client's, with
// iothub's ClientOptions.Debug) and azidentity's authentication events
// (which credential was tried, why one failed) to w, for --debug; w is the
// root's redacting writer. nil stops it. azcore's log listener is
// process-wide, so only the CLI's root calls this.
func LogTo(w io.Writer) {
	if w == nil {
		azlog.SetListener(nil)
		return
	}
	azlog.SetEvents(azidentity.EventAuthentication, azlog.EventRequest, azlog.EventResponse, azlog.EventResponseError)
	azlog.SetListener(func(e azlog.Event, msg string) {
		_, _ = fmt.Fprintf(w, "[%s] %s\n", e, msg)
	})
}
