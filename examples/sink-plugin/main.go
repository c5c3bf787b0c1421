// Command hookbridge-sink-jsonfile is an example sink plugin built outside hookbridge's own
// tree: it imports only the plugin SDK and the schemas package. Build it into hookbridge's
// plugins folder and name it in a sink's plugin: field.
//
//	go build -o plugins/hookbridge-sink-jsonfile ./examples/sink-plugin
package main

import "github.com/hookbridge/hookbridge/plugins/sdk"

func main() { sdk.Serve(newSink()) }
