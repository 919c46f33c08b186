module github.com/dmctl/dmctl/examples/go-device

go 1.26

require (
	github.com/amenzhinsky/iothub v0.9.1
	github.com/eclipse/paho.mqtt.golang v1.5.1
)

require (
	github.com/Azure/go-amqp v0.18.1 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	golang.org/x/net v0.44.0 // indirect
	golang.org/x/sync v0.17.0 // indirect
)
