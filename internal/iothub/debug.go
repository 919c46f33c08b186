package iothub

// DebugHeaders are the headers --debug shows besides azcore's own allowed
// ones: IoT Hub's bookkeeping headers, none of them a credential.
var DebugHeaders = []string{
	"iothub-errorcode", "x-ms-continuation", "x-ms-max-item-count", "x-ms-item-type",
	"x-ms-request-id", "Request-Id", "ETag", "If-Match",
}
